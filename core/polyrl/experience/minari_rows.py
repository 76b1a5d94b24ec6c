"""Minari episodes as TransitionBatch rows: T+1 observations and T steps become T transitions.

Row t of an episode is (observations[t], actions[t], rewards[t], observations[t+1],
terminations[t], truncations[t]). Box observations are taken as stored; other observation
spaces (Discrete, Dict, Tuple...) are encoded the way polyrl encodes them for every backend
(`polyrl.observations.encoding`), so the rows fit an agent made on the same env.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polyrl.errors import ExperienceError, UnsupportedSpaceError
from polyrl.experience.batch import TransitionBatch, TransitionSchema


def observation_box(space: Any) -> Any:
    """The Box the rows' observations are in: `space` itself, or its polyrl encoding."""
    from gymnasium import spaces

    from polyrl.observations.encoding import encoded_space

    if isinstance(space, spaces.Box):
        return space
    try:
        return encoded_space(space)
    except (UnsupportedSpaceError, NotImplementedError, TypeError, ValueError) as exc:
        raise ExperienceError(
            f"the dataset's observations ({space}) have no fixed-size numeric form polyrl can train on: {exc}"
        ) from exc


def schema_of(observation_space: Any, action_space: Any) -> TransitionSchema:
    """The schema of the rows read from a dataset with these spaces."""
    return TransitionSchema.for_spaces(observation_box(observation_space), action_space)


def _at(values: Any, index: int) -> Any:
    """Step `index` of a Minari observation array, or of each leaf of a dict/tuple of them."""
    if isinstance(values, dict):
        return {key: _at(value, index) for key, value in values.items()}
    if isinstance(values, tuple):
        return tuple(_at(value, index) for value in values)
    return values[index]


def _length(values: Any) -> int:
    if isinstance(values, dict):
        return _length(next(iter(values.values())))
    if isinstance(values, tuple):
        return _length(values[0])
    return len(values)


def observation_rows(space: Any, values: Any) -> np.ndarray:
    """A Minari episode's observations as an array with a leading step axis, encoded when not a Box."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return np.asarray(values, dtype=space.dtype)
    from polyrl.observations.encoding import encode

    box = observation_box(space)
    rows = [encode(space, _at(values, index)) for index in range(_length(values))]
    return np.stack(rows) if rows else np.zeros((0, *box.shape), dtype=box.dtype)


def episode_rows(observation_space: Any, episode: Any, ours: dict[str, Any] | None) -> TransitionBatch:
    """The transitions of one Minari EpisodeData (`ours`: the "polyrl" metadata of a dataset polyrl wrote)."""
    observations = observation_rows(observation_space, episode.observations)
    steps = len(episode)
    if len(observations) != steps + 1:
        raise ExperienceError(
            f"episode {episode.id} of the dataset has {len(observations)} observations for {steps} steps "
            "(a Minari episode has one more observation than steps)"
        )
    actions = np.asarray(episode.actions)
    if np.issubdtype(actions.dtype, np.integer) and actions.ndim == 2 and actions.shape[1] == 1:
        actions = actions.reshape(-1)  # a Discrete action stored as a column
    episode_id, env_id = int(episode.id), 0
    optional: dict[str, np.ndarray] = {}
    if ours is not None:
        ids, envs = list(ours.get("episode_ids", [])), list(ours.get("env_ids", []))
        if episode.id < len(ids) and episode.id < len(envs):
            episode_id, env_id = int(ids[episode.id]), int(envs[episode.id])
        infos = episode.infos or {}
        for name in ours.get("optional", []):
            if name in ("log_probs", "values") and name in infos:
                optional[name] = np.asarray(infos[name])[:steps]
    return TransitionBatch(
        observations=observations[:-1],
        actions=actions,
        rewards=np.asarray(episode.rewards),
        next_observations=observations[1:],
        terminated=np.asarray(episode.terminations),
        truncated=np.asarray(episode.truncations),
        episode_ids=np.full(steps, episode_id),
        env_ids=np.full(steps, env_id),
        log_probs=optional.get("log_probs"),
        values=optional.get("values"),
    )
