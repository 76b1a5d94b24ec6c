"""What counts as an image observation, its layout, and the conv stack polyrl gives it by default.

An image is a rank-3 Box with finite bounds (uint8 pixels, MinAtar's bool planes, float
frames). The channel axis is the smallest of the first and last axes (SB3's rule: CxHxW when
the first axis is smallest, else HxWxC). Every backend scales it to [0, 1] the same way,
`(x - low) / (high - low)`, before its first conv layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from polyrl.observations.spec import ConvLayerSpec

#: Nature-CNN (Mnih et al. 2015), the encoder SB3's CnnPolicy and RLlib's 84x84 config use.
NATURE_CONV = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
#: MinAtar's network (Young & Tian 2019): one 3x3 conv with 16 filters, for small grids.
SMALL_CONV = ((16, 3, 1),)
#: Images at least this high and wide get NATURE_CONV; smaller ones SMALL_CONV.
NATURE_MIN_SIDE = 36
#: Hidden layers after the conv stack when the spec sets none: Nature-CNN's 512 features.
IMAGE_HIDDEN = (512,)


@dataclass(frozen=True)
class ImageLayout:
    """Where an image observation's channels are, and the bounds its values are scaled from."""

    shape: tuple[int, int, int]
    channels_last: bool
    low: float
    high: float
    dtype: str

    @property
    def channels(self) -> int:
        """Number of channels."""
        return self.shape[2] if self.channels_last else self.shape[0]

    @property
    def height(self) -> int:
        """Image height."""
        return self.shape[0] if self.channels_last else self.shape[1]

    @property
    def width(self) -> int:
        """Image width."""
        return self.shape[1] if self.channels_last else self.shape[2]

    @property
    def chw(self) -> tuple[int, int, int]:
        """The shape a conv layer sees: (channels, height, width)."""
        return (self.channels, self.height, self.width)

    def describe(self) -> str:
        """E.g. "84x84x4 (HxWxC, uint8 in [0, 255])"."""
        order = "HxWxC" if self.channels_last else "CxHxW"
        dims = "x".join(str(n) for n in self.shape)
        return f"{dims} ({order}, {self.dtype} in [{self.low:g}, {self.high:g}])"


def is_channels_last(shape: tuple[int, int, int]) -> bool:
    """The one rule for where an image's channels are: last unless the first axis is the smaller outer one."""
    return shape[0] > shape[2]


def image_layout(space: Any) -> ImageLayout | None:
    """The layout of an image observation space, or None when the space is not an image."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Box) or len(space.shape) != 3:
        return None
    low, high = np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return None
    lo, hi = float(low.min()), float(high.max())
    if hi <= lo:
        return None
    shape = (int(space.shape[0]), int(space.shape[1]), int(space.shape[2]))
    return ImageLayout(
        shape=shape,
        channels_last=is_channels_last(shape),
        low=lo,
        high=hi,
        dtype=str(space.dtype),
    )


def conv_output_sides(layout: ImageLayout, conv: list[ConvLayerSpec]) -> list[tuple[int, int]]:
    """Height and width after each conv layer ("valid" padding); a side below 1 means it does not fit."""
    height, width = layout.height, layout.width
    sides = []
    for layer in conv:
        height = (height - layer.kernel) // layer.stride + 1
        width = (width - layer.kernel) // layer.stride + 1
        sides.append((height, width))
    return sides


def conv_fits(layout: ImageLayout, conv: list[ConvLayerSpec]) -> bool:
    """Whether every conv layer has at least one output pixel on this image."""
    return all(h >= 1 and w >= 1 for h, w in conv_output_sides(layout, conv))


def conv_features(layout: ImageLayout, conv: list[ConvLayerSpec]) -> int:
    """How many numbers the flattened output of the conv stack holds."""
    height, width = conv_output_sides(layout, conv)[-1]
    return conv[-1].channels * height * width


def default_conv(layout: ImageLayout) -> list[ConvLayerSpec] | None:
    """polyrl's conv stack for an image: Nature-CNN from 36x36 up, else MinAtar's; None if none fits."""
    from polyrl.observations.spec import ConvLayerSpec

    table = NATURE_CONV if min(layout.height, layout.width) >= NATURE_MIN_SIDE else SMALL_CONV
    conv = [ConvLayerSpec(channels=c, kernel=k, stride=s) for c, k, s in table]
    return conv if conv_fits(layout, conv) else None


def image_layout_of_shape(shape: tuple[int, ...], scale: tuple[float, float]) -> ImageLayout:
    """The layout of an image of `shape` whose values lie in `scale` = (low, high)."""
    if len(shape) != 3:
        raise ValueError(f"an image has three axes, got shape {shape}")
    three = (int(shape[0]), int(shape[1]), int(shape[2]))
    return ImageLayout(
        shape=three, channels_last=is_channels_last(three), low=scale[0], high=scale[1], dtype="?"
    )
