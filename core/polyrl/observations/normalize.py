"""Running mean/std normalisation as part of the agent, the same on every backend (SB3 VecNormalize's rules).

One `Normalizer` per agent holds the statistics. Every training env the backend builds is
wrapped in `NormalizeWrapper`, which updates them and hands the backend normalised values;
`Agent.act` normalises with them frozen, and the envs of evaluate/play are not wrapped, so
their returns are raw. The statistics are saved in the checkpoint as plain JSON numbers.
The wrapper must run in the agent's process (the statistics are one shared object), so
backends that build envs in worker processes get a typed error naming the option to drop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from polyrl.errors import CorruptCheckpointError, UnsupportedOptionError, UnsupportedSpaceError
from polyrl.files import write_text_atomically
from polyrl.observations.images import image_layout
from polyrl.observations.spec import NormalizeSpec

#: The checkpoint file (in the native directory) that holds the statistics.
NORMALIZATION_FILE = "polyrl_normalization.json"


class RunningMeanStd:
    """Mean and variance of a stream of arrays (Chan et al.'s parallel update, as SB3 and Gymnasium do)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch (leading axis = samples) into the statistics."""
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def to_json(self) -> dict[str, Any]:
        """The statistics as JSON numbers."""
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_json(self, data: dict[str, Any]) -> None:
        """Statistics read back from `to_json`; the shapes must match."""
        mean, var = np.asarray(data["mean"], np.float64), np.asarray(data["var"], np.float64)
        if mean.shape != self.mean.shape or var.shape != self.var.shape:
            raise ValueError(f"statistics of shape {mean.shape}, expected {self.mean.shape}")
        self.mean, self.var, self.count = mean, var, float(data["count"])


class Normalizer:
    """The agent's normalisation statistics and settings; shared by all its training envs in this process."""

    def __init__(self, spec: NormalizeSpec, observation_space: Any, gamma: float, env_name: str) -> None:
        if spec.observations:
            if image_layout(observation_space) is not None:
                raise UnsupportedSpaceError(
                    f"normalize.observations is on, but {env_name} gives images, which polyrl already "
                    "scales into [0, 1] for its CNN; set normalize.observations to false"
                )
            if not isinstance(observation_space, gym.spaces.Box):
                raise UnsupportedSpaceError(
                    f"normalize.observations needs Box observations, not {observation_space}"
                )
        self.spec = spec
        self.gamma = gamma
        shape = tuple(observation_space.shape or ())
        self.observations = RunningMeanStd(shape) if spec.observations else None
        self.returns = RunningMeanStd(()) if spec.rewards else None
        self.pid = os.getpid()
        self.raw_episodes: list[tuple[float, int]] = []

    def normalize_observation(self, observation: Any) -> Any:
        """Observations (one or a batch) normalised with the current statistics; unchanged when off."""
        if self.observations is None:
            return observation
        stats, clip = self.observations, self.spec.clip
        normalized = (np.asarray(observation, np.float64) - stats.mean) / np.sqrt(
            stats.var + self.spec.epsilon
        )
        return np.clip(normalized, -clip, clip).astype(np.float32)

    def scale_reward(self, reward: float) -> float:
        """A reward divided by the running std of the discounted return, clipped."""
        if self.returns is None:
            return reward
        scaled = reward / float(np.sqrt(self.returns.var + self.spec.epsilon))
        return float(np.clip(scaled, -self.spec.clip, self.spec.clip))

    def drain_episodes(self) -> list[tuple[float, int]]:
        """(raw return, length) of the training episodes that ended since the last call."""
        episodes, self.raw_episodes = self.raw_episodes, []
        return episodes

    def state(self) -> dict[str, Any]:
        """Everything to save: settings and statistics."""
        return {
            "format": 1,
            "gamma": self.gamma,
            "observations": None if self.observations is None else self.observations.to_json(),
            "returns": None if self.returns is None else self.returns.to_json(),
        }

    def save(self, directory: Path) -> None:
        """Write the statistics into a checkpoint's native directory."""
        write_text_atomically(directory / NORMALIZATION_FILE, json.dumps(self.state()))

    def load(self, directory: Path) -> None:
        """Read the statistics a checkpoint holds; CorruptCheckpointError when missing or unreadable."""
        path = directory / NORMALIZATION_FILE
        try:
            data = json.loads(path.read_text())
            for name in ("observations", "returns"):
                stats = getattr(self, name)
                if stats is not None:
                    stats.load_json(data[name])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptCheckpointError(
                f"the checkpoint's normalisation statistics ({path}) cannot be read: {exc}. The spec "
                "says normalize is on, so the agent cannot act as saved without them"
            ) from exc


class NormalizeWrapper(gym.Wrapper[Any, Any, Any, Any]):
    """A training env's wrapper: updates the shared statistics and returns normalised values."""

    def __init__(self, env: gym.Env[Any, Any], normalizer: Normalizer) -> None:
        super().__init__(env)
        if os.getpid() != normalizer.pid:
            raise UnsupportedOptionError(
                "normalize keeps one set of statistics in the agent's process, but the backend builds "
                "this env in another process; use in-process envs (backend_options vec_env='dummy', "
                "or the backend's default) with normalize"
            )
        self.normalizer = normalizer
        self.discounted = 0.0
        self.raw_return, self.length = 0.0, 0

    def _observe(self, observation: Any) -> Any:
        stats = self.normalizer.observations
        if stats is None:
            return observation
        stats.update(np.asarray(observation, np.float64)[None])
        return self.normalizer.normalize_observation(observation)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self.discounted, self.raw_return, self.length = 0.0, 0.0, 0
        return self._observe(observation), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        self.raw_return += reward
        self.length += 1
        returns = self.normalizer.returns
        if returns is not None:
            self.discounted = self.discounted * self.normalizer.gamma + reward
            returns.update(np.asarray([self.discounted]))
        if terminated or truncated:
            self.normalizer.raw_episodes.append((self.raw_return, self.length))
            self.discounted, self.raw_return, self.length = 0.0, 0.0, 0
        return self._observe(observation), self.normalizer.scale_reward(reward), terminated, truncated, info
