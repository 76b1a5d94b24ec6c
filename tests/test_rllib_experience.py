"""The RLlib backend's experience exchange: transitions collected in training, added to and sampled
from the replay buffer (polyrl_rllib.experience, polyrl_rllib.collect).

One tiny agent per algorithm trains two iterations while collecting (module-scoped); the adding
tests then use the same DQN/SAC agents, whose buffers hold exactly the collected rows, so every
sampled row can be found either among the added rows or among the collected ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ray.rllib")

from polyrl import Agent
from polyrl.errors import ExperienceError
from polyrl.experience import TransitionBatch, TransitionSchema
from polyrl_rllib import BACKEND

TINY = BACKEND.conformance_overrides
ENV = {"ppo": "CartPole-v1", "dqn": "CartPole-v1", "sac": "Pendulum-v1"}
REWARD_BASE = 1000.0


def tiny(algorithm: str) -> Agent:
    return Agent(
        backend="rllib", algorithm=algorithm, env=ENV[algorithm], seed=0, preset="none", **TINY[algorithm]
    )


@dataclass
class Collected:
    """An agent trained two iterations while collecting: its batches, records and driver reports."""

    agent: Agent
    batches: list[TransitionBatch]
    records: list[Any]
    reports: list[Any] = field(default_factory=list)


@pytest.fixture(scope="module")
def collected():
    cache: dict[str, Collected] = {}

    def get(algorithm: str) -> Collected:
        if algorithm not in cache:
            agent = tiny(algorithm)
            driver = agent._parts.driver
            run = Collected(agent, [], [])
            train_iteration = driver.train_iteration

            def reporting():  # the driver's own report, with each episode's return and length
                report = train_iteration()
                run.reports.append(report)
                return report

            driver.train_iteration = reporting
            driver.set_collecting(True)
            for _ in range(2):
                run.records += agent.train(iterations=1).records
                run.batches.append(driver.take_collected())
            driver.set_collecting(False)
            cache[algorithm] = run
        return cache[algorithm]

    yield get
    for run in cache.values():
        run.agent.close()


def _ended(batches: list[TransitionBatch]) -> list[tuple[float, int]]:
    """(return, length) of every episode that ends in the batches, in the order they end."""
    rows = TransitionBatch.concatenate(batches)
    ended = [e for e in rows.episodes() if e.terminated[-1] or e.truncated[-1]]
    ended.sort(key=lambda e: int(np.flatnonzero(rows.episode_ids == e.episode_ids[-1])[-1]))
    return [(float(e.rewards.sum()), len(e)) for e in ended]


@pytest.mark.parametrize("algorithm", ["ppo", "dqn", "sac"])
def test_collected_rows_are_every_env_step_of_the_iteration(collected, algorithm):
    run = collected(algorithm)
    agent = run.agent
    for batch, record in zip(run.batches, run.records, strict=True):
        assert len(batch) == record.iteration_env_steps > 0
        assert batch.observations.shape[1:] == agent.observation_space.shape
        assert all(agent.action_space.contains(a) for a in batch.actions.astype(agent.action_space.dtype))
        assert not batch.env_ids.any() and batch.infos["backend"] == "rllib"
        for episode in batch.episodes():
            np.testing.assert_array_equal(episode.observations[1:], episode.next_observations[:-1])
            done = episode.terminated | episode.truncated
            assert not done[:-1].any()
    # An episode cut by the iteration boundary keeps its id and continues where it stopped.
    first, second = run.batches
    for key in set(first.episode_ids.tolist()) & set(second.episode_ids.tolist()):
        before, after = first.take(first.episode_ids == key), second.take(second.episode_ids == key)
        assert not (before.terminated[-1] or before.truncated[-1])
        np.testing.assert_array_equal(before.next_observations[-1], after.observations[0])
    # The ended episodes are the ones the driver reported, with the same returns and lengths.
    reported = [episode for report in run.reports for episode in report.episodes]
    ended = _ended(run.batches)
    assert [length for _, length in ended] == [length for _, length in reported]
    np.testing.assert_allclose([r for r, _ in ended], [r for r, _ in reported], rtol=1e-5)
    assert len(ended) == sum(record.iteration_episodes for record in run.records)
    if ENV[algorithm] == "CartPole-v1":  # the true final observation, not the next reset's
        rows = TransitionBatch.concatenate(run.batches)
        final = rows.next_observations[rows.terminated]
        assert len(final) and np.all((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 0.2094))


def test_nothing_is_kept_when_collecting_is_off(collected):
    run = collected("ppo")  # not an agent whose buffer the adding tests compare with what was collected
    driver = run.agent._parts.driver
    assert len(driver.take_collected()) == 0
    run.agent.train(iterations=1)
    empty = driver.take_collected()
    assert len(empty) == 0 and empty.observations.shape[1:] == run.agent.observation_space.shape


def _schema(agent: Agent) -> TransitionSchema:
    return TransitionSchema.for_spaces(agent.observation_space, agent.action_space)


def _added(agent: Agent, seed: int, start: float) -> TransitionBatch:
    """24 rows with rewards start + row: episode 0 consecutive and terminated, episode 1 eight
    unrelated transitions ending truncated, episode 2 consecutive and unfinished."""
    observation_space, action_space = agent.observation_space, agent.action_space
    observation_space.seed(seed)
    action_space.seed(seed)
    consecutive = [np.stack([observation_space.sample() for _ in range(9)]) for _ in range(2)]
    unrelated = np.stack([observation_space.sample() for _ in range(16)])
    observations = np.concatenate([consecutive[0][:-1], unrelated[:8], consecutive[1][:-1]])
    following = np.concatenate([consecutive[0][1:], unrelated[8:], consecutive[1][1:]])
    rows = np.arange(24)
    return TransitionBatch(
        observations=observations,
        actions=np.stack([np.asarray(action_space.sample()) for _ in rows]),
        rewards=start + rows,
        next_observations=following,
        terminated=rows == 7,
        truncated=rows == 15,
        episode_ids=rows // 8,
        env_ids=np.zeros(24),
    ).conformed(_schema(agent))


def _continuation(agent: Agent, batch: TransitionBatch, start: float) -> TransitionBatch:
    """Four more steps of `batch`'s unfinished episode 2, from its last observation; terminated."""
    space = agent.observation_space
    fresh = np.stack([space.sample() for _ in range(4)])
    observations = np.concatenate([batch.next_observations[-1:], fresh])
    rows = np.arange(4)
    return TransitionBatch(
        observations=observations[:-1],
        actions=np.stack([np.asarray(agent.action_space.sample()) for _ in rows]),
        rewards=start + rows,
        next_observations=observations[1:],
        terminated=rows == 3,
        truncated=np.zeros(4),
        episode_ids=np.full(4, 2),
        env_ids=np.zeros(4),
    ).conformed(_schema(agent))


def _check_sampled(sampled: TransitionBatch, added: list[TransitionBatch], stored: TransitionBatch) -> int:
    """Every sampled row is an added row (found by its reward) or a collected one; the added
    rows seen. Actions within 1e-5 (continuous actions are stored normalised), the rest exact."""
    rows = TransitionBatch.concatenate(added)
    by_reward = {float(r): i for i, r in enumerate(rows.rewards)}
    by_observation = {stored.observations[i].tobytes(): i for i in range(len(stored))}
    seen = set()
    for i in range(len(sampled)):
        if sampled.rewards[i] >= REWARD_BASE:
            j, source = by_reward[float(sampled.rewards[i])], rows
            seen.add(j)
        else:
            j, source = by_observation[sampled.observations[i].tobytes()], stored
            assert sampled.rewards[i] == source.rewards[j]
        np.testing.assert_array_equal(sampled.observations[i], source.observations[j])
        np.testing.assert_array_equal(sampled.next_observations[i], source.next_observations[j])
        np.testing.assert_allclose(sampled.actions[i], source.actions[j], atol=1e-5, rtol=0)
        assert sampled.actions.dtype == source.actions.dtype
        # Episode 2's last row of the first batch is continued by the second: not an end.
        assert sampled.terminated[i] == source.terminated[j]
        assert sampled.truncated[i] == source.truncated[j]
    return len(seen)


@pytest.mark.parametrize("algorithm", ["dqn", "sac"])
def test_added_rows_are_sampled_and_kept_by_checkpoints(collected, algorithm, tmp_path):
    run = collected(algorithm)
    agent = run.agent
    stored = TransitionBatch.concatenate(run.batches)  # what training put into the buffer
    buffer = agent.native.local_replay_buffer
    counters = (agent.env_steps, agent.iterations, agent.episodes)
    size, episodes = agent.replay_size, len(buffer.episodes)
    assert size == len(stored)

    batch = _added(agent, seed=3, start=REWARD_BASE)
    assert agent.add_experience(batch) == len(batch)
    assert agent.replay_size == size + len(batch)
    assert (agent.env_steps, agent.iterations, agent.episodes) == counters
    # Episodes 0 and 2 are one chunk each, episode 1's unrelated rows one chunk per row.
    assert len(buffer.episodes) == episodes + 1 + 8 + 1

    rng, sampled_steps = buffer.rng.bit_generator.state, buffer.get_sampled_timesteps()
    sampled = agent.sample_experience(300)
    assert len(sampled) == 300
    # Looking does not change what training draws next.
    assert buffer.rng.bit_generator.state == rng and buffer.get_sampled_timesteps() == sampled_steps
    assert _check_sampled(sampled, [batch], stored) >= len(batch) // 2

    agent.save(tmp_path / "ckpt")
    loaded = Agent.load(tmp_path / "ckpt")
    try:
        assert loaded.replay_size == agent.replay_size
        assert (loaded.env_steps, loaded.iterations, loaded.episodes) == counters
        # The unfinished episode 2 survives the checkpoint as an open chunk: its continuation
        # joins the stored episode (no new one) and only then ends it.
        more = _continuation(loaded, batch, start=REWARD_BASE + 100)
        loaded_buffer = loaded.native.local_replay_buffer
        before = len(loaded_buffer.episodes)
        assert loaded.add_experience(more) == len(more)
        assert len(loaded_buffer.episodes) == before and len(loaded_buffer.episodes[-1]) == 8 + 4
        assert loaded.replay_size == agent.replay_size + len(more)
        resampled = loaded.sample_experience(300)
        assert _check_sampled(resampled, [batch, more], stored) >= len(batch) // 2
    finally:
        loaded.close()


def test_sampling_refuses_bad_counts(collected):
    driver = collected("dqn").agent._parts.driver
    for n in (0, -3, 2.5, True):
        with pytest.raises(ExperienceError):
            driver.sample_experience(n)


def test_rows_convert_to_rllib_and_back_exactly():
    """Images (channels first or last, uint8) and bounded Box actions survive RLlib's layout."""
    from polyrl_rllib.experience import Spaces

    rng = np.random.default_rng(0)
    actions = gym.spaces.Box(-2.0, 3.0, (2,), np.float32)
    for shape in ((3, 10, 12), (10, 12, 3)):
        images = gym.spaces.Box(0, 255, shape, np.uint8)
        spaces = Spaces(images, actions, normalize=True, clip=False)
        pixels = rng.integers(0, 256, (5, *shape), dtype=np.uint8)
        module = spaces.to_module_observations(pixels)
        assert module.dtype == np.float32 and module.shape[1:] == (10, 12, 3) and module.max() <= 1.0
        np.testing.assert_array_equal(spaces.to_agent_observations(module), pixels)
    values = rng.uniform(-2.0, 3.0, (64, 2)).astype(np.float32)
    normalised = spaces.to_module_actions(values)
    assert normalised.dtype == np.float32 and np.abs(normalised).max() <= 1.0
    np.testing.assert_allclose(spaces.to_env_actions(normalised), values, atol=1e-6)
    clipping = Spaces(images, actions, normalize=False, clip=True)
    np.testing.assert_array_equal(clipping.to_module_actions(values), values)
    np.testing.assert_array_equal(clipping.to_env_actions(np.full((1, 2), 9.0)), [[3.0, 3.0]])
