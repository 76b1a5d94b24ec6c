"""The Q-network of tdqn: polyrl's encoder for the observation space, hidden layers, one output per action.

The core hands a driver Box observations only: a vector (Discrete, Dict, Tuple observations
arrive one-hot/flattened) or an image (a rank-3 Box). `resolve_network(spec.network,
observation_space)` says what to build for either, the same on every backend: for an image a
conv stack (`polyrl.torch_layers.conv_encoder`: scale to [0, 1], channels first, the convs,
flatten) and the hidden layers after it; for a vector a flatten and the hidden layers.
`describe_encoder` reads the encoder back from the built model for effective_hyperparameters.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from polyrl import NetworkSpec
from polyrl.observations.network import EncoderDescription, resolve_network
from polyrl.observations.spec import ConvLayerSpec
from polyrl.torch_layers import conv_encoder, describe_convs, torch_activation

HIDDEN, ACTIVATION = [64, 64], "relu"  # the MLP when the spec gives no network (images: polyrl's)


def build_q_network(network: NetworkSpec | None, observation_space: Any, actions: int) -> torch.nn.Sequential:
    """encoder -> body (hidden layers, each followed by the activation) -> head (one Q-value per action).

    Draws its initial weights from torch's global generator: call it inside `fork_rng`.
    """
    resolved = resolve_network(network, observation_space)
    hidden = resolved.hidden if resolved.hidden is not None else HIDDEN
    activation = resolved.activation or ACTIVATION
    encoder: torch.nn.Module
    if resolved.is_cnn:
        cnn: Any = conv_encoder(resolved.encoder, activation)  # scale, channels first, convs, flatten
        encoder, features = cnn, int(cnn.output_dim)
    else:
        encoder, features = torch.nn.Flatten(), int(np.prod(observation_space.shape))
    sizes = [features, *hidden]
    layers: list[torch.nn.Module] = []
    for inputs, outputs in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(inputs, outputs), torch_activation(activation)()]
    parts = OrderedDict(
        encoder=encoder, body=torch.nn.Sequential(*layers), head=torch.nn.Linear(sizes[-1], actions)
    )
    return torch.nn.Sequential(parts)


def describe_encoder(q_net: torch.nn.Sequential, observation_space: Any) -> EncoderDescription:
    """The encoder as built: its conv layers (none: an MLP), input shape, scaling and output size."""
    encoder: Any = q_net.encoder  # the conv encoder's low and span are plain attributes
    shape = [int(n) for n in observation_space.shape]
    convs = describe_convs(encoder)
    if not convs:
        return EncoderDescription(kind="mlp", input_shape=shape)
    device = next(q_net.parameters()).device
    with torch.no_grad():  # the flattened size, measured on a blank image
        features = int(encoder(torch.zeros((1, *shape), device=device)).shape[1])
    low, span = float(encoder.low), float(encoder.span)
    return EncoderDescription(
        kind="cnn",
        conv=[ConvLayerSpec(channels=c, kernel=k, stride=s) for c, k, s in convs],
        input_shape=shape,
        scale=(low, low + span),
        conv_features=features,
    )
