"""How polyrl hands every observation space to a backend as a Box: one-hot and flatten, the same everywhere.

Discrete, MultiDiscrete, MultiBinary, Tuple and Dict observations become one float32 vector
(Gymnasium's `spaces.flatten`: a Discrete is one-hot, a MultiDiscrete one one-hot per entry,
Dict keys in sorted order). Boxes pass unchanged, so an image keeps its shape and gets a CNN.
Spaces nobody can encode as a vector (Text, Graph, Sequence) and a Dict or Tuple holding an
image are refused at creation with the wrapper that makes them fit.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from polyrl.errors import UnsupportedSpaceError
from polyrl.observations.images import image_layout

#: Space classes that have no fixed-size vector form.
_UNENCODABLE = (spaces.Text, spaces.Graph, spaces.Sequence)


def _leaves(space: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, leaf space) of every non-container subspace, e.g. ("mission", Text(...))."""
    if isinstance(space, spaces.Dict):
        return [leaf for key, sub in space.spaces.items() for leaf in _leaves(sub, f"{path}{key}.")]
    if isinstance(space, spaces.Tuple):
        return [leaf for index, sub in enumerate(space.spaces) for leaf in _leaves(sub, f"{path}{index}.")]
    return [(path.rstrip("."), space)]


def needs_encoding(space: Any) -> bool:
    """Whether polyrl turns this observation space into a flat float vector before a backend sees it."""
    return not isinstance(space, spaces.Box)


def check_encodable(space: Any, env_name: str) -> None:
    """UnsupportedSpaceError, with the wrapper that helps, unless `space` can be encoded for a network."""
    if isinstance(space, spaces.Box):
        return
    leaves = _leaves(space)
    top_keys = list(space.spaces) if isinstance(space, spaces.Dict) else []
    bad = [(path, sub) for path, sub in leaves if isinstance(sub, _UNENCODABLE) or not _known(sub)]
    if bad:
        names = ", ".join(f"{path or 'the observation'} ({type(sub).__name__})" for path, sub in bad)
        keep = [key for key in top_keys if not any(path.split(".")[0] == key for path, _ in bad)]
        kept_images = [key for key in keep if image_layout(space.spaces[key]) is not None]
        if kept_images and len(keep) > 1:
            advice = (
                f"add {_filter(kept_images[:1])} to the spec's wrappers for a CNN on the image, or "
                f'{_filter(keep)} then "flatten" for an MLP over the rest'
            )
        elif keep:
            advice = f"add {_filter(keep)} to the spec's wrappers to drop them"
        else:
            advice = "wrap the env in a factory that turns them into numbers"
        raise UnsupportedSpaceError(
            f"the observations of {env_name} hold {names}, which no backend can feed to a network "
            f"(no fixed-size numeric form); {advice}"
        )
    images = [path for path, sub in leaves if image_layout(sub) is not None]
    if images and needs_encoding(space):
        raise UnsupportedSpaceError(
            f"the observations of {env_name} are a {type(space).__name__} holding image(s) at "
            f"{images}; polyrl's CNN takes one image. Add {_filter([images[0].split('.')[0]])} to "
            'the spec\'s wrappers to train a CNN on the image alone, or "flatten" for an MLP over everything'
        )


def _filter(keys: list[str]) -> str:
    """The filter_keys wrapper as JSON, so it can be pasted into --wrappers or a spec file."""
    return json.dumps({"kind": "filter_keys", "keys": keys})


def _known(space: Any) -> bool:
    return isinstance(
        space,
        spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary | spaces.Dict | spaces.Tuple,
    )


def encoded_space(space: Any) -> spaces.Box:
    """The float32 Box a non-Box observation space becomes (one-hot / flattened)."""
    flat = spaces.flatten_space(space)
    if not isinstance(flat, spaces.Box):  # check_encodable refuses the spaces that flatten otherwise
        raise UnsupportedSpaceError(f"{space} has no fixed-size vector form")
    return spaces.Box(
        low=np.asarray(flat.low, dtype=np.float32),
        high=np.asarray(flat.high, dtype=np.float32),
        dtype=np.float32,
    )


def encode(space: Any, observation: Any) -> np.ndarray:
    """One observation of `space` as the float32 vector `encoded_space(space)` describes."""
    return np.asarray(spaces.flatten(space, observation), dtype=np.float32)


class SingleKey(gym.ObservationWrapper[Any, Any, Any]):
    """A Dict observation of one key is that key's value (what `filter_keys: ["image"]` leaves)."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, spaces.Dict) and len(space.spaces) == 1
        ((self.key, self.observation_space),) = space.spaces.items()

    def observation(self, observation: Any) -> Any:
        return observation[self.key]


def is_single_key(space: Any) -> bool:
    """Whether `space` is a Dict of exactly one subspace."""
    return isinstance(space, spaces.Dict) and len(space.spaces) == 1


class EncodeObservation(gym.ObservationWrapper[np.ndarray, Any, Any]):
    """Flattens (one-hot for discrete parts) every observation of a non-Box space into float32."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.raw_space = env.observation_space
        self.observation_space = encoded_space(self.raw_space)

    def observation(self, observation: Any) -> np.ndarray:
        return encode(self.raw_space, observation)


def _contains(space: Any, observation: Any) -> bool:
    try:
        return bool(space.contains(observation))
    except (TypeError, ValueError, KeyError, AttributeError):
        return False


def encode_for_act(source: Any, observation: Any) -> tuple[Any, bool]:
    """An observation for `Agent.act`: (encoded observation(s), whether it is one observation).

    When the env's observations are encoded (Discrete, Tuple, Dict...), one raw observation or
    a list of them is encoded here; anything else (already encoded) passes unchanged, with
    False: the caller decides single or batch by shape.
    """
    raw = getattr(source, "raw_observation_space", None)
    if raw is None or not needs_encoding(raw):
        return observation, False
    if _contains(raw, observation):
        return encode(raw, observation), True
    if isinstance(observation, list | np.ndarray) and len(observation) > 0:
        items = list(observation)
        if all(_contains(raw, item) for item in items):
            return np.stack([encode(raw, item) for item in items]), False
    return observation, False
