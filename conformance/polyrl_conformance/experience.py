"""The runs behind the experience checks: transitions out of training, and into a replay buffer.

`collected_run`: a fresh agent trains two iterations with a callback that receives every
iteration's transitions (`on_experience`); the check compares them with the iteration records
(rows = env steps, ended episodes and their returns) and with themselves (an episode's rows
follow each other). `added_run`: a fresh agent, which has collected nothing, takes a batch of
synthetic transitions whose rewards (1000 + row) name the row they came from; its counters,
replay size and sampled rows are read before and after a checkpoint round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from polyrl import Agent, Callback, TrainConfig
from polyrl.experience import TransitionBatch

if TYPE_CHECKING:
    from polyrl import IterationRecord

    from polyrl_conformance.scenario import AlgorithmScenario

#: Rows of the synthetic batch; rewards are REWARD_BASE + row, so a sampled row names its source.
ADDED_ROWS = 40
REWARD_BASE = 1000.0
EPISODE_LENGTH = 8  # rows per synthetic episode (the last one terminates)
SAMPLES = 400
COLLECT_ITERATIONS = 2


class ExperienceCollector(Callback):
    """Keeps every on_experience batch and every iteration record, in call order."""

    def __init__(self) -> None:
        self.batches: list[TransitionBatch] = []
        self.records: list[IterationRecord] = []

    def on_experience(self, context: Any, batch: TransitionBatch) -> None:
        self.batches.append(batch)

    def on_iteration_end(self, context: Any, record: IterationRecord) -> None:
        self.records.append(record)


@dataclass
class CollectedRun:
    """A two-iteration run with a collector, or how starting it was refused."""

    declared: bool
    batches: list[TransitionBatch] = field(default_factory=list)
    records: list[IterationRecord] = field(default_factory=list)
    refused: str | None = None
    """The error type of a refused run ("UnsupportedOptionError" when not declared, as it must be)."""
    observation_space: Any = None
    action_space: Any = None


@dataclass
class AddedRun:
    """A synthetic batch added to a fresh agent: counters, sizes and samples before and after load."""

    declared: bool
    batch: TransitionBatch | None = None
    refused: str | None = None
    added: int | None = None
    before: dict[str, int | None] = field(default_factory=dict)
    after: dict[str, int | None] = field(default_factory=dict)
    sampled: TransitionBatch | None = None
    loaded_size: int | None = None
    loaded_sampled: TransitionBatch | None = None


def _declares(scenario: AlgorithmScenario, feature: str) -> bool:
    return feature in scenario.info.algorithms[scenario.case.algorithm].features


def collected_run(scenario: AlgorithmScenario) -> CollectedRun:
    """Train a fresh agent COLLECT_ITERATIONS iterations with an ExperienceCollector."""
    declared = _declares(scenario, "experience.collect")
    agent = scenario.build()
    collector = ExperienceCollector()
    run = CollectedRun(declared, observation_space=agent.observation_space, action_space=agent.action_space)
    try:
        agent.train(TrainConfig(iterations=COLLECT_ITERATIONS), callbacks=[collector])
    except Exception as exc:
        if declared:
            raise
        run.refused = type(exc).__name__
        return run
    run.batches, run.records = collector.batches, collector.records
    return run


def synthetic_batch(agent: Agent) -> TransitionBatch:
    """ADDED_ROWS transitions drawn from the agent's spaces (seeded), rewards REWARD_BASE + row."""
    observation_space, action_space = agent.observation_space, agent.action_space
    observation_space.seed(7)
    action_space.seed(8)
    rows = np.arange(ADDED_ROWS)
    return TransitionBatch(
        observations=np.stack([observation_space.sample() for _ in rows]),
        actions=np.stack([np.asarray(action_space.sample()) for _ in rows]),
        rewards=REWARD_BASE + rows,
        next_observations=np.stack([observation_space.sample() for _ in rows]),
        terminated=rows % EPISODE_LENGTH == EPISODE_LENGTH - 1,
        truncated=np.zeros(ADDED_ROWS, dtype=bool),
        episode_ids=rows // EPISODE_LENGTH,
        env_ids=np.zeros(ADDED_ROWS),
    )


def _counters(agent: Agent) -> dict[str, int | None]:
    return {
        "env_steps": agent.env_steps,
        "iterations": agent.iterations,
        "episodes": agent.episodes,
        "replay_size": agent.replay_size,
    }


def added_run(scenario: AlgorithmScenario) -> AddedRun:
    """Add the synthetic batch to a fresh agent, sample, save, load, sample again."""
    declared = _declares(scenario, "experience.add")
    agent = scenario.build()
    batch = synthetic_batch(agent)
    run = AddedRun(declared, batch=batch, before=_counters(agent))
    try:
        run.added = agent.add_experience(batch)
    except Exception as exc:
        if declared:
            raise
        run.refused = type(exc).__name__
        return run
    run.after = _counters(agent)
    run.sampled = agent.sample_experience(SAMPLES)
    checkpoint = scenario.workdir / "experience-checkpoint"
    agent.save(checkpoint)
    loaded = scenario.adopt(Agent.load(checkpoint, trust_env_factory=True))
    run.loaded_size = loaded.replay_size
    run.loaded_sampled = loaded.sample_experience(SAMPLES)
    return run


def unmatched_rows(batch: TransitionBatch, sampled: TransitionBatch) -> list[str]:
    """Sampled rows that are not rows of `batch` (found by their reward), described; [] if all are."""
    problems = []
    for i in range(len(sampled)):
        row = round(float(sampled.rewards[i]) - REWARD_BASE)
        if not 0 <= row < len(batch) or not np.isclose(sampled.rewards[i], batch.rewards[row]):
            problems.append(f"sampled row {i}: reward {sampled.rewards[i]} is no added row's")
            continue
        for name in ("observations", "next_observations", "actions"):
            mine, theirs = getattr(sampled, name)[i], getattr(batch, name)[row]
            if not np.allclose(np.asarray(mine, dtype=float), np.asarray(theirs, dtype=float), atol=1e-5):
                problems.append(f"sampled row {i} (added row {row}): {name} {mine} != added {theirs}")
        if bool(sampled.terminated[i]) != bool(batch.terminated[row]):
            problems.append(f"sampled row {i} (added row {row}): terminated {sampled.terminated[i]}")
    return problems


def episode_problems(batches: list[TransitionBatch], records: list[IterationRecord]) -> list[str]:
    """Where collected rows disagree with the records or with each other; [] when they agree."""
    problems = []
    if len(batches) != len(records):
        return [f"{len(batches)} on_experience calls for {len(records)} iterations"]
    returns: dict[int, float] = {}
    for index, (batch, record) in enumerate(zip(batches, records, strict=True)):
        if len(batch) != record.iteration_env_steps:
            problems.append(
                f"iteration {index + 1}: {len(batch)} rows for {record.iteration_env_steps} env steps"
            )
        ended = []
        for episode in batch.episodes():
            key = int(episode.episode_ids[0])
            returns[key] = returns.get(key, 0.0) + float(episode.rewards.sum())
            following = episode.observations[1:], episode.next_observations[:-1]
            if not np.allclose(*following):
                problems.append(
                    f"iteration {index + 1}, episode {key}: a row's next_observations is not the "
                    "next row's observations (rows out of step order, or shifted by one step)"
                )
            if bool(episode.terminated[-1] or episode.truncated[-1]):
                ended.append(returns[key])
        if len(ended) != record.iteration_episodes:
            problems.append(
                f"iteration {index + 1}: {len(ended)} episodes end in its rows, the record counts "
                f"{record.iteration_episodes}"
            )
        elif (
            ended
            and record.return_mean is not None
            and not np.isclose(np.mean(ended), record.return_mean, rtol=1e-4, atol=1e-4)
        ):
            problems.append(
                f"iteration {index + 1}: ended episodes' rewards sum to a mean return of "
                f"{np.mean(ended):.4f}, the record reports {record.return_mean:.4f}"
            )
    return problems
