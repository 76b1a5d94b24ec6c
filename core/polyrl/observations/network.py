"""The network every backend builds for a spec and an observation space: an MLP, or a CNN then an MLP.

Backends call `resolve_network` with the observation space their library will see and build
exactly what it returns, so the same spec gives the same encoder everywhere; the result is
also what `effective_hyperparameters().encoder` reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from polyrl._model import StrictModel
from polyrl.errors import UnsupportedSpaceError
from polyrl.observations.images import (
    IMAGE_HIDDEN,
    ImageLayout,
    conv_features,
    conv_fits,
    conv_output_sides,
    default_conv,
    image_layout,
)
from polyrl.observations.spec import ConvLayerSpec

if TYPE_CHECKING:
    from polyrl.spec import NetworkSpec


class EncoderDescription(StrictModel):
    """The observation encoder a backend built: "mlp" (flat input) or "cnn" (conv layers, then hidden)."""

    kind: Literal["mlp", "cnn"]
    conv: list[ConvLayerSpec] = []
    """The conv layers ("cnn" only), in order."""
    input_shape: list[int]
    """The observation shape the encoder takes."""
    scale: tuple[float, float] | None = None
    """(low, high) an image is scaled from into [0, 1] ("cnn" only)."""
    conv_features: int | None = None
    """Flattened size of the conv stack's output ("cnn" only)."""


class ResolvedNetwork(StrictModel):
    """What a backend builds: the encoder, then `hidden` layers and `activation` (None: its default)."""

    encoder: EncoderDescription
    hidden: list[int] | None
    activation: str | None

    @property
    def is_cnn(self) -> bool:
        """Whether the encoder is a conv stack."""
        return self.encoder.kind == "cnn"


def resize_advice(layout: ImageLayout) -> str:
    """The wrapper that makes a too-small (or oddly shaped) image fit polyrl's default CNN."""
    return (
        f'add the wrapper {{"kind": "resize", "shape": [84, 84]}} to the spec\'s wrappers (needs '
        f"opencv-python-headless), set network.conv to layers that fit {layout.height}x{layout.width}, "
        'or use the "flatten" wrapper for an MLP on the raw values'
    )


def resolve_network(network: NetworkSpec | None, observation_space: Any) -> ResolvedNetwork:
    """The encoder and layers for `network` (the spec's, maybe None) on `observation_space`.

    An image observation gets a CNN: the spec's conv layers, else polyrl's default for its
    size; hidden layers default to [512] (Nature-CNN's) and the activation to relu for an
    image when the spec sets no network. Raises UnsupportedSpaceError, with the wrapper that
    helps, when the conv layers leave no output pixel.
    """
    layout = image_layout(observation_space)
    if layout is None:
        if network is not None and network.conv is not None:
            raise UnsupportedSpaceError(
                f"network.conv is set but the observation space {observation_space} is not an image "
                "(a rank-3 Box with finite bounds); remove network.conv"
            )
        shape = [int(n) for n in (getattr(observation_space, "shape", None) or ())]
        encoder = EncoderDescription(kind="mlp", input_shape=shape)
        if network is None:
            return ResolvedNetwork(encoder=encoder, hidden=None, activation=None)
        return ResolvedNetwork(encoder=encoder, hidden=list(network.hidden), activation=network.activation)
    conv = network.conv if network is not None and network.conv is not None else default_conv(layout)
    if conv is None or not conv_fits(layout, conv):
        sides = "" if conv is None else f" (sides after each layer: {conv_output_sides(layout, conv)})"
        raise UnsupportedSpaceError(
            f"the image observation {layout.describe()} is too small for the conv layers{sides}; "
            + resize_advice(layout)
        )
    encoder = EncoderDescription(
        kind="cnn",
        conv=list(conv),
        input_shape=list(layout.shape),
        scale=(layout.low, layout.high),
        conv_features=conv_features(layout, conv),
    )
    if network is None:
        return ResolvedNetwork(encoder=encoder, hidden=list(IMAGE_HIDDEN), activation="relu")
    return ResolvedNetwork(encoder=encoder, hidden=list(network.hidden), activation=network.activation)
