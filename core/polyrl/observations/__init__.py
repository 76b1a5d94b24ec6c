"""Observations of every kind a Gymnasium env gives: the spec's words for them, the wrappers, the
encoding into a Box that every backend takes, image layouts and the CNN they get, normalisation.

    spec        ConvLayerSpec, the wrapper specs, NormalizeSpec (pydantic, no gymnasium)
    wrappers    the declared wrappers, applied to every env of an agent
    encoding    Discrete/Tuple/Dict -> one float vector; what cannot be encoded is refused
    images      what an image is, its layout, polyrl's default conv stack
    network     the encoder and layers every backend builds for a spec
    normalize   running mean/std of observations and rewards, saved with the agent
"""
