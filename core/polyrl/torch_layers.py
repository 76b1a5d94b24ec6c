"""Helpers torch-based backend drivers share: activation names and reading layers back.

Nothing here imports torch at module import time, so core stays light; `describe_layers`
imports it when a driver (which has already loaded torch) calls it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: polyrl's activation names -> the torch.nn class of the same function.
TORCH_ACTIVATIONS = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
}
#: torch.nn class names -> polyrl's activation names.
ACTIVATION_NAMES = {value: key for key, value in TORCH_ACTIVATIONS.items()}


def torch_activation(name: str) -> Any:
    """The torch.nn activation class of a polyrl activation name."""
    import torch

    return getattr(torch.nn, TORCH_ACTIVATIONS[name])


def describe_layers(layers: Iterable[Any]) -> tuple[list[int], str]:
    """Hidden sizes and activation of a stack of torch modules (Linear layers and activations).

    Containers are skipped, so `module.modules()` may be passed as it is; the activation is the
    first one found, in polyrl's name ("none" if there is none).
    """
    import torch

    layers = list(layers)
    hidden = [m.out_features for m in layers if isinstance(m, torch.nn.Linear)]
    activations = [
        type(m).__name__ for m in layers if not isinstance(m, torch.nn.Linear) and not list(m.children())
    ]
    activation = ACTIVATION_NAMES.get(activations[0], activations[0].lower()) if activations else "none"
    return hidden, activation
