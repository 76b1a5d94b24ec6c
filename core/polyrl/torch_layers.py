"""Helpers torch-based backend drivers share: activation names and reading layers back.

Nothing here imports torch at module import time, so core stays light; `describe_layers`
imports it when a driver (which has already loaded torch) calls it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyrl.observations.network import EncoderDescription

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


def conv_encoder(encoder: EncoderDescription, activation: str = "relu") -> Any:
    """A torch module for a "cnn" encoder: scale to [0, 1], put channels first, convs, flatten.

    It takes a batch of observations as the env gives them (any dtype, HxWxC or CxHxW as
    `encoder.input_shape` says) and returns (batch, encoder.conv_features) float32 features;
    its `output_dim` attribute holds that size. SB3 and Tianshou plug it in as their feature
    extractor, so the scaling and the layers are the ones `resolve_network` describes.
    """
    import torch

    from polyrl.observations.images import image_layout_of_shape

    if encoder.kind != "cnn" or encoder.scale is None or encoder.conv_features is None:
        raise ValueError(f"conv_encoder needs a 'cnn' encoder description, got kind {encoder.kind!r}")
    layout = image_layout_of_shape(tuple(encoder.input_shape), encoder.scale)
    act = torch_activation(activation)
    layers: list[Any] = []
    channels = layout.channels
    for layer in encoder.conv:
        layers += [torch.nn.Conv2d(channels, layer.channels, layer.kernel, layer.stride), act()]
        channels = layer.channels
    layers.append(torch.nn.Flatten())
    low, high = encoder.scale

    class ConvEncoder(torch.nn.Module):
        """Scales an image batch into [0, 1], moves channels first and runs the conv stack."""

        def __init__(self) -> None:
            super().__init__()
            self.convs = torch.nn.Sequential(*layers)
            self.output_dim = int(encoder.conv_features or 0)
            self.channels_last = layout.channels_last
            self.low, self.span = float(low), float(high - low)

        def forward(self, observations: Any) -> Any:
            x = torch.as_tensor(observations)
            x = (x.to(torch.float32) - self.low) / self.span
            if self.channels_last:
                x = x.permute(0, 3, 1, 2)
            return self.convs(x)

    return ConvEncoder()


def describe_convs(module: Any) -> list[tuple[int, int, int]]:
    """(channels, kernel, stride) of every Conv2d in a torch module, in order: what a backend really built."""
    import torch

    return [
        (m.out_channels, int(m.kernel_size[0]), int(m.stride[0]))
        for m in module.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
