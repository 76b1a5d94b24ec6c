"""A fake backend for the experience tests: the NumPy fake driver with a replay list and a tap.

`fakexp/replay` is "off-policy": every step it collects goes into a replay list (capped at
CAPACITY rows), which `add_experience` extends, `sample_experience` draws
from, and `save`/`load` keep. `fakexp/linear` is "on-policy": it reports what it collects but
has no buffer. `fakexp/plain` declares neither feature. Collection keeps every env step in step
order with the true final observation of each episode, as the driver contract asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polyrl
from fake_backend import FakeDriver
from polyrl.backend import AlgorithmInfo, BackendInfo, DriverReport, EnvSource
from polyrl.experience import TransitionBatch, TransitionSchema
from polyrl.spec import AgentSpec

BUFFER_FILE = "replay.npz"
CAPACITY = 1000


class ExperienceDriver(FakeDriver):
    """FakeDriver whose steps are transitions: kept for the tap, and in a replay list if off-policy."""

    def __init__(self, spec: AgentSpec, env: EnvSource) -> None:
        super().__init__(spec, env)
        self.schema = TransitionSchema.for_spaces(env.observation_space, env.action_space)
        self.off_policy = spec.algorithm == "replay"
        self.capacity = CAPACITY
        self.buffer = TransitionBatch.empty(self.schema)
        self.collecting = False
        self.collected: list[TransitionBatch] = []
        self.episode_id = 0
        self.added_calls = 0

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> ExperienceDriver:
        driver = super().load(directory, spec, env)
        assert isinstance(driver, ExperienceDriver)
        if (directory / BUFFER_FILE).exists():
            with np.load(directory / BUFFER_FILE) as arrays:
                driver.buffer = TransitionBatch(**{name: arrays[name] for name in arrays.files})
        return driver

    def save(self, directory: Path) -> None:
        super().save(directory)
        if self.off_policy:
            np.savez(directory / BUFFER_FILE, **self.buffer.arrays())

    def train_iteration(self) -> DriverReport:
        self.rows: dict[str, list[Any]] = {name: [] for name in self.buffer.arrays()}
        report = super().train_iteration()
        batch = TransitionBatch(**{name: np.stack(values) for name, values in self.rows.items()}).conformed(
            self.schema
        )
        if self.collecting:
            self.collected.append(batch)
        if self.off_policy:
            self._store(batch)
        return report

    def on_transition(self, *step: Any) -> None:
        """One row per env step; next_observations is the true final one at an episode's end."""
        names = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated")
        for name, value in zip(names, step, strict=True):
            self.rows[name].append(value)
        self.rows["episode_ids"].append(self.episode_id)
        self.rows["env_ids"].append(0)
        terminated, truncated = step[4], step[5]
        if terminated or truncated:
            self.episode_id += 1

    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        actions = super().act(observations, deterministic)
        return actions if self.discrete else actions.astype(np.float32)

    def _store(self, batch: TransitionBatch) -> None:
        merged = TransitionBatch.concatenate([self.buffer, batch])
        self.buffer = merged.take(slice(max(len(merged) - self.capacity, 0), None))

    # -- the experience methods ------------------------------------------------------------
    def add_experience(self, batch: TransitionBatch) -> None:
        self.added_calls += 1
        self._store(batch)

    def sample_experience(self, n: int) -> TransitionBatch:
        return self.buffer.take(self.rng.integers(0, len(self.buffer), size=n))

    def set_collecting(self, on: bool) -> None:
        self.collecting = on
        if not on:
            self.collected = []

    def take_collected(self) -> TransitionBatch:
        taken, self.collected = self.collected, []
        return TransitionBatch.concatenate(taken) if taken else TransitionBatch.empty(self.schema)

    def replay_size(self) -> int | None:
        return len(self.buffer) if self.off_policy else None


class ExperiencePlugin:
    """Declares the "fakexp" backend."""

    @polyrl.backend.hookimpl
    def polyrl_backends(self) -> list[BackendInfo]:
        spaces = ["discrete", "box"]
        return [
            BackendInfo(
                name="fakexp",
                description="test backend with a replay list",
                driver="experience_backend:ExperienceDriver",
                library="numpy",
                requires=["numpy"],
                install_hint="numpy",
                algorithms={
                    "replay": AlgorithmInfo(
                        action_spaces=spaces,
                        on_policy=False,
                        features=["experience.add", "experience.collect"],
                    ),
                    "linear": AlgorithmInfo(
                        action_spaces=spaces, on_policy=True, features=["experience.collect"]
                    ),
                    "plain": AlgorithmInfo(action_spaces=spaces, on_policy=True),
                },
            )
        ]
