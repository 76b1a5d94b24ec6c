"""The observation wrappers a spec declares, applied in order to every env of an agent.

Because the wrappers are part of the spec, they are in every checkpoint and re-applied at
load, and every backend trains on exactly the same observations. Gymnasium's own wrappers
do the work where they exist (ResizeObservation, GrayscaleObservation, AtariPreprocessing,
FilterObservation); frame stacking is polyrl's, because it concatenates along the channel
axis (an 84x84x1 frame stacked 4 times is 84x84x4, an image a CNN takes) rather than adding
a leading axis as Gymnasium's FrameStackObservation does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from polyrl.errors import BackendNotInstalledError, UnsupportedSpaceError
from polyrl.observations.encoding import EncodeObservation
from polyrl.observations.images import image_layout
from polyrl.observations.spec import (
    AtariPreset,
    FilterKeys,
    Flatten,
    FrameStack,
    Grayscale,
    OneHot,
    Resize,
    WrapperSpec,
)

Env = gym.Env[Any, Any]


class ChannelFrameStack(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """The last `n` observations concatenated.

    Images along their channel axis, 2-D frames on a new leading (channel) axis, vectors along
    their last axis.
    """

    def __init__(self, env: Env, n: int) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box):
            raise UnsupportedSpaceError(
                f"frame_stack stacks Box observations, not {space}; put it after 'flatten' (or "
                "'filter_keys' down to one key)"
            )
        self.n = n
        layout = image_layout(space)
        rank = len(space.shape)
        if layout is not None:
            self.axis = 2 if layout.channels_last else 0
            self.new_axis = False
        else:
            self.axis = 0 if rank == 2 else rank - 1
            self.new_axis = rank == 2
        self.frames: deque[np.ndarray] = deque(maxlen=n)
        self.observation_space = spaces.Box(
            low=self._stack([np.asarray(space.low)] * n),
            high=self._stack([np.asarray(space.high)] * n),
            dtype=space.dtype,  # type: ignore[arg-type]
        )

    def _stack(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if self.new_axis:
            return np.stack(frames, axis=0)
        return np.concatenate(frames, axis=self.axis)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self.frames.clear()
        for _ in range(self.n):
            self.frames.append(np.asarray(observation))
        return self._stack(list(self.frames)), info

    def observation(self, observation: Any) -> np.ndarray:
        self.frames.append(np.asarray(observation))
        return self._stack(list(self.frames))


def _needs_opencv(kind: str) -> None:
    try:
        import cv2  # noqa: F401
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"the {kind!r} wrapper resizes images with OpenCV, which is not installed; "
            "pip install 'polyrl[images]' (or opencv-python-headless)"
        ) from exc


def _image_or_error(env: Env, kind: str) -> Any:
    layout = image_layout(env.observation_space)
    if layout is None or not layout.channels_last:
        raise UnsupportedSpaceError(
            f"the {kind!r} wrapper takes HxWxC image observations, but the observations it gets are "
            f"{env.observation_space} (if an earlier wrapper changed them, put {kind!r} first)"
        )
    return layout


class ResizeImage(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """HxWxC uint8 frames resized to `shape` with OpenCV's area interpolation; the channel axis is kept.

    polyrl's own (Gymnasium's ResizeObservation drops a single channel axis, so grayscale then
    resize would give HxW frames under an HxWx1 space).
    """

    def __init__(self, env: Env, shape: tuple[int, int]) -> None:
        super().__init__(env)
        import cv2

        self.cv2 = cv2
        self.height, self.width = shape
        channels = int(env.observation_space.shape[2])  # type: ignore[index]
        self.observation_space = spaces.Box(0, 255, (self.height, self.width, channels), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        resized = self.cv2.resize(
            np.asarray(observation), (self.width, self.height), interpolation=self.cv2.INTER_AREA
        )
        return resized.reshape(self.observation_space.shape)


def _pixels_or_error(env: Env, kind: str) -> Any:
    """The layout of HxWxC uint8 pixel frames (0-255); else UnsupportedSpaceError saying what it got."""
    layout = _image_or_error(env, kind)
    space = env.observation_space
    if space.dtype != np.uint8 or layout.low != 0 or layout.high != 255:
        raise UnsupportedSpaceError(
            f"the {kind!r} wrapper takes uint8 pixel frames (0-255), but this env gives {space} "
            f"({layout.dtype} in [{layout.low:g}, {layout.high:g}]); "
            + (
                "such images need no resizing: set network.conv to layers that fit, or keep polyrl's default"
                if kind == "resize"
                else "they are not RGB pixels: leave 'grayscale' out"
            )
        )
    return layout


def _resize(env: Env, spec: Resize) -> Env:
    _pixels_or_error(env, "resize")
    _needs_opencv("resize")
    return ResizeImage(env, spec.shape)


def _grayscale(env: Env, spec: Grayscale) -> Env:
    layout = _pixels_or_error(env, "grayscale")
    if layout.channels != 3:
        raise UnsupportedSpaceError(
            f"the 'grayscale' wrapper takes RGB images (3 channels); this env's have {layout.channels}"
        )
    from gymnasium.wrappers import GrayscaleObservation

    return GrayscaleObservation(env, keep_dim=True)


def _atari(env: Env, spec: AtariPreset) -> Env:
    _needs_opencv("atari")
    from gymnasium.wrappers import AtariPreprocessing

    try:
        wrapped: Env = AtariPreprocessing(
            env,
            noop_max=spec.noop_max,
            frame_skip=spec.frame_skip,
            screen_size=spec.screen_size,
            terminal_on_life_loss=spec.terminal_on_life_loss,
            grayscale_obs=True,
            grayscale_newaxis=spec.stack == 1,
            scale_obs=False,
        )
    except (ValueError, AssertionError, AttributeError) as exc:
        raise UnsupportedSpaceError(
            "the 'atari' preset is for ALE envs (ids 'ALE/...', which polyrl makes with frameskip=1 "
            f"as the preset needs); this env is not one it can wrap ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). For other image envs use 'grayscale', "
            "'resize' and 'frame_stack'"
        ) from exc
    return ChannelFrameStack(wrapped, spec.stack) if spec.stack > 1 else wrapped


def _flatten(env: Env, spec: Flatten) -> Env:
    return EncodeObservation(env)


def _one_hot(env: Env, spec: OneHot) -> Env:
    if not isinstance(env.observation_space, spaces.Discrete | spaces.MultiDiscrete):
        raise UnsupportedSpaceError(
            f"the 'one_hot' wrapper takes Discrete or MultiDiscrete observations, not {env.observation_space}"
        )
    return EncodeObservation(env)


def _filter_keys(env: Env, spec: FilterKeys) -> Env:
    space = env.observation_space
    if not isinstance(space, spaces.Dict):
        raise UnsupportedSpaceError(f"the 'filter_keys' wrapper takes Dict observations, not {space}")
    missing = [key for key in spec.keys if key not in space.spaces]
    if missing:
        raise UnsupportedSpaceError(
            f"filter_keys names {missing}, which the observations do not have; "
            f"their keys are {list(space.spaces)}"
        )
    from gymnasium.wrappers import FilterObservation

    return FilterObservation(env, list(spec.keys))


def _frame_stack(env: Env, spec: FrameStack) -> Env:
    return ChannelFrameStack(env, spec.n)


_APPLY: dict[str, Callable[[Env, Any], Env]] = {
    "frame_stack": _frame_stack,
    "resize": _resize,
    "grayscale": _grayscale,
    "atari": _atari,
    "flatten": _flatten,
    "one_hot": _one_hot,
    "filter_keys": _filter_keys,
}


def apply_wrappers(env: Env, wrappers: Sequence[WrapperSpec]) -> Env:
    """`env` with the spec's wrappers applied in order."""
    for spec in wrappers:
        env = _APPLY[spec.kind](env, spec)
    return env


def make_kwargs_for(
    wrappers: Sequence[WrapperSpec], env_id: str | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """gymnasium.make keywords the wrappers need (the Atari preset skips frames, so ALE must not)."""
    if env_id is not None and env_id.startswith("ALE/") and any(w.kind == "atari" for w in wrappers):
        return {"frameskip": 1, **kwargs}
    return kwargs
