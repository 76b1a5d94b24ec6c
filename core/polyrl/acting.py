"""What `Agent.act` does around the driver's act(): observations in as the env gives them (one or
a batch, encoded and normalised as in training), actions out in the action space's own form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from polyrl.envs import batch_observations, is_single_observation, space_kind
from polyrl.errors import InvalidObservationError
from polyrl.observations.encoding import encode_for_act

if TYPE_CHECKING:
    from gymnasium.spaces import Box

    from polyrl.run import AgentParts


def act_on(parts: AgentParts, observation: Any, deterministic: bool) -> Any:
    """The action for one observation, or actions for a batch: what `Agent.act` returns."""
    source = parts.env
    space = source.observation_space
    try:
        observation, single = encode_for_act(source, observation)
        single = single or is_single_observation(observation, space)
        batch = batch_observations([observation], space) if single else _as_batch(parts, observation)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidObservationError(
            f"cannot read the observation as one of {space} or a batch of them: {exc}"
        ) from exc
    if source.normalizer is not None:
        batch = source.normalizer.normalize_observation(batch)
    actions = _conform(parts, parts.driver.act(batch, deterministic))
    if single:
        action = actions[0]
        return int(action) if space_kind(parts.env.action_space) == "discrete" else action
    return actions


def _as_batch(parts: AgentParts, observation: Any) -> Any:
    space = parts.env.observation_space
    if isinstance(observation, dict):
        return {k: np.asarray(v) for k, v in observation.items()}
    batch = np.asarray(observation, dtype=space.dtype)
    if batch.shape[1:] != tuple(space.shape or ()):
        raise InvalidObservationError(
            f"observation of shape {np.shape(observation)} fits neither one observation "
            f"{tuple(space.shape or ())} nor a batch (N, {', '.join(map(str, space.shape or ()))})"
        )
    return batch


def _conform(parts: AgentParts, actions: Any) -> np.ndarray:
    space = parts.env.action_space
    kind = space_kind(space)
    array: np.ndarray = np.asarray(actions)
    if kind == "box":
        box = cast("Box", space)  # space_kind found a Box
        clipped: np.ndarray = np.clip(array.astype(box.dtype, copy=False), box.low, box.high)
        return clipped.reshape((-1, *box.shape))
    if kind == "discrete":
        return array.astype(np.int64, copy=False).reshape(-1)
    return array.astype(space.dtype, copy=False)
