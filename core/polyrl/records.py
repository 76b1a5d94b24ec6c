"""The statistics of runs, in one vocabulary for every backend."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from polyrl._model import StrictModel

#: The metric names every IterationRecord carries, on every backend.
COMMON_METRICS = (
    "iteration",
    "env_steps",
    "iteration_env_steps",
    "episodes",
    "iteration_episodes",
    "return_mean",
    "return_min",
    "return_max",
    "episode_length_mean",
    "learning_rate",
    "iteration_seconds",
    "wall_seconds",
    "steps_per_second",
)


class DriverReport(StrictModel):
    """What a backend driver reports after one training iteration; the core makes the record.

    `episodes` holds (return, length) of every episode that ended during the iteration;
    `losses` uses the names "loss", "policy_loss", "value_loss", "entropy_loss", "q_loss",
    "actor_loss", "critic_loss" where they apply; `metrics` holds other native numbers.
    """

    env_steps: Annotated[int, Field(ge=0)]
    episodes: list[tuple[float, int]] = Field(default_factory=list)
    losses: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)


#: The old name of DriverReport (it read too much like IterationRecord); removed in 0.3.
IterationReport = DriverReport


class IterationRecord(StrictModel):
    """The statistics of one training iteration.

    Counters (`iteration`, `env_steps`, `episodes`) count over the agent's whole life, so they
    continue after load. Return and length statistics cover the episodes that ended during the
    iteration and are None when none did.
    """

    iteration: int
    env_steps: int
    iteration_env_steps: int
    episodes: int
    iteration_episodes: int
    return_mean: float | None = None
    return_min: float | None = None
    return_max: float | None = None
    episode_length_mean: float | None = None
    learning_rate: float
    losses: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    iteration_seconds: float
    wall_seconds: float
    steps_per_second: float

    def flat(self) -> dict[str, float | int | None]:
        """Every number of the record under one flat name (losses and metrics by their key)."""
        values: dict[str, Any] = self.model_dump(exclude={"losses", "metrics"})
        values.update(self.losses)
        values.update(self.metrics)
        return values

    def metric(self, name: str) -> float | int | None:
        """One number by its flat name; KeyError lists the names this record has."""
        values = self.flat()
        if name not in values:
            raise KeyError(f"no metric {name!r}; this record has {sorted(values)}")
        return values[name]


class EpisodeRecord(StrictModel):
    """One played episode."""

    index: int
    episode_return: float
    length: int
    terminated: bool
    truncated: bool
    seconds: float


class StepRecord(StrictModel):
    """One env step during play, passed to on_step_end."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    episode: int
    step: int
    observation: Any
    action: Any
    reward: float
    next_observation: Any
    terminated: bool
    truncated: bool
    info: dict[str, Any]


def _summary(values: list[float]) -> tuple[float | None, float | None, float | None, float | None]:
    if not values:
        return None, None, None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return mean, std, min(values), max(values)


class PlayResult(StrictModel):
    """The episodes of one play() or evaluate() call and their summary."""

    episodes: list[EpisodeRecord]
    return_mean: float | None
    return_std: float | None
    return_min: float | None
    return_max: float | None
    length_mean: float | None
    total_steps: int
    deterministic: bool
    stopped_early: bool = False
    recorded: str | None = None
    """The .npz file or Minari dataset the played transitions were written to (PlayConfig.record)."""

    @classmethod
    def from_episodes(
        cls, episodes: list[EpisodeRecord], deterministic: bool, stopped_early: bool = False
    ) -> PlayResult:
        """Summarise a list of episodes."""
        mean, std, low, high = _summary([e.episode_return for e in episodes])
        lengths = [e.length for e in episodes]
        return cls(
            episodes=episodes,
            return_mean=mean,
            return_std=std,
            return_min=low,
            return_max=high,
            length_mean=sum(lengths) / len(lengths) if lengths else None,
            total_steps=sum(lengths),
            deterministic=deterministic,
            stopped_early=stopped_early,
        )


class TrainResult(StrictModel):
    """The iterations of one train() call and why it ended."""

    records: list[IterationRecord]
    evaluations: list[dict[str, float | int | None]] = Field(default_factory=list)
    iterations: int
    env_steps: int
    run_env_steps: int
    wall_seconds: float
    stop_reason: str

    @property
    def last(self) -> IterationRecord | None:
        """The last iteration's record, if any ran."""
        return self.records[-1] if self.records else None
