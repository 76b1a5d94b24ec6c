"""The spec's words for observations: conv layers, declared wrappers, normalisation, the device.

These are plain pydantic models (no gymnasium, no torch): `polyrl.spec.AgentSpec` holds them,
`polyrl.observations.wrappers` applies the wrappers, `polyrl.observations.normalize` the
normalisation and `polyrl.driverkit.resolve_device` the device.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from polyrl._model import SpecModel, StrictModel


class ConvLayerSpec(SpecModel):
    """One convolution: output channels, square kernel size and stride ("valid" padding, no dilation)."""

    channels: Annotated[int, Field(gt=0, le=4096)]
    """Output channels (filters)."""
    kernel: Annotated[int, Field(gt=0, le=64)]
    """Kernel height and width."""
    stride: Annotated[int, Field(gt=0, le=64)] = 1
    """Stride in both directions."""

    @model_validator(mode="before")
    @classmethod
    def _from_triple(cls, value: Any) -> Any:
        # [channels, kernel, stride] is how RLlib and most papers write a conv stack.
        if isinstance(value, list | tuple):
            if len(value) not in (2, 3):
                raise ValueError(
                    f"a conv layer is [channels, kernel] or [channels, kernel, stride], got {value}"
                )
            return dict(zip(("channels", "kernel", "stride"), value, strict=False))
        return value


class _WrapperModel(StrictModel):
    # Not SpecModel: its catch-all "before" validator would cover `kind`, and pydantic allows no
    # validator on a discriminator. Integers are strict instead (True is not 1).
    model_config = ConfigDict(allow_inf_nan=False)


class FrameStack(_WrapperModel):
    """Stack the last `n` observations along the channel axis (images) or the last axis (vectors)."""

    kind: Literal["frame_stack"] = "frame_stack"
    n: Annotated[int, Field(ge=2, le=64, strict=True)] = 4
    """How many observations to stack."""


class Resize(_WrapperModel):
    """Resize image observations to `shape` (height, width); needs opencv-python(-headless)."""

    kind: Literal["resize"] = "resize"
    shape: tuple[
        Annotated[int, Field(gt=0, le=4096, strict=True)], Annotated[int, Field(gt=0, le=4096, strict=True)]
    ] = (84, 84)
    """Height and width after resizing."""


class Grayscale(_WrapperModel):
    """Turn RGB image observations into one channel (kept as a channel axis: HxWx1)."""

    kind: Literal["grayscale"] = "grayscale"


class AtariPreset(_WrapperModel):
    """The standard Atari preprocessing: no-op starts, frame skip 4, 84x84 grayscale, then 4 stacked frames.

    Gymnasium's AtariPreprocessing (needs opencv) followed by a frame stack; for `ALE/...` ids
    polyrl also makes the env with `frameskip=1`, which AtariPreprocessing requires.
    """

    kind: Literal["atari"] = "atari"
    frame_skip: Annotated[int, Field(gt=0, le=16, strict=True)] = 4
    """Env frames per agent step."""
    screen_size: Annotated[int, Field(gt=0, le=512, strict=True)] = 84
    """Side of the square grayscale frame."""
    noop_max: Annotated[int, Field(ge=0, le=1000, strict=True)] = 30
    """At most this many no-op actions after a reset."""
    stack: Annotated[int, Field(ge=1, le=64, strict=True)] = 4
    """Frames stacked into one observation."""
    terminal_on_life_loss: bool = False
    """End the episode when a life is lost."""


class Flatten(_WrapperModel):
    """Flatten any observation (images, dicts, tuples) into one float vector: an MLP instead of a CNN."""

    kind: Literal["flatten"] = "flatten"


class OneHot(_WrapperModel):
    """Discrete (or MultiDiscrete) observations as one-hot float vectors (what polyrl does by default)."""

    kind: Literal["one_hot"] = "one_hot"


class FilterKeys(_WrapperModel):
    """Keep only these keys of a Dict observation (e.g. drop MiniGrid's Text "mission")."""

    kind: Literal["filter_keys"] = "filter_keys"
    keys: list[str] = Field(min_length=1)
    """The keys to keep, in this order."""


WrapperSpec = Annotated[
    FrameStack | Resize | Grayscale | AtariPreset | Flatten | OneHot | FilterKeys,
    Field(discriminator="kind"),
]
"""One observation wrapper: {"kind": "frame_stack", "n": 4}, or just "grayscale" for its defaults."""

WRAPPER_KINDS = ("frame_stack", "resize", "grayscale", "atari", "flatten", "one_hot", "filter_keys")


def wrapper_documents(value: Any) -> Any:
    """Let a wrapper be written as its kind alone ("grayscale"), and one wrapper without a list."""
    if isinstance(value, str | dict):
        value = [value]
    if not isinstance(value, list):
        return value
    return [{"kind": item} if isinstance(item, str) else item for item in value]


class NormalizeSpec(SpecModel):
    """Running mean/std normalisation of observations and rewards, as SB3's VecNormalize does it.

    Statistics update while training, are frozen in evaluate/play and `act`, and are saved in
    the checkpoint. Rewards are scaled by the running std of the discounted return (not
    centred); both are clipped to [-clip, clip]. Evaluation returns are always raw rewards.
    """

    observations: bool = True
    """Normalise (float vector) observations."""
    rewards: bool = False
    """Scale rewards by the running std of the discounted return."""
    clip: Annotated[float, Field(gt=0)] = 10.0
    """Clip normalised values to [-clip, clip]."""
    epsilon: Annotated[float, Field(gt=0, le=1)] = 1e-8
    """Added to the variance before the square root."""

    @model_validator(mode="after")
    def _something(self) -> NormalizeSpec:
        if not (self.observations or self.rewards):
            raise ValueError("normalize sets neither observations nor rewards; leave normalize unset instead")
        return self


DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d{1,2})?)$"


def device_text(value: Any) -> Any:
    """Devices are compared lowercase ("CUDA:0" is "cuda:0")."""
    return value.strip().lower() if isinstance(value, str) else value


__all__ = [
    "DEVICE_PATTERN",
    "AtariPreset",
    "ConvLayerSpec",
    "FilterKeys",
    "Flatten",
    "FrameStack",
    "Grayscale",
    "NormalizeSpec",
    "OneHot",
    "Resize",
    "WrapperSpec",
    "device_text",
    "wrapper_documents",
]
