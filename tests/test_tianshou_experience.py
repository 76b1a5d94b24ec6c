"""Shared experience on the Tianshou backend: add/sample through the replay buffer, collected rows."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("tianshou")

from polyrl import Agent
from polyrl.errors import ExperienceError, UnsupportedOptionError
from polyrl.experience.batch import TransitionBatch
from polyrl_tianshou.checkpoint import counters as saved_counters

OFF_POLICY = ("dqn", "sac", "td3", "ddpg")
#: learning_starts beyond every test's steps: actions are the collector's random ones, no update runs.
NO_UPDATES = {"learning_starts": 10_000, "buffer_size": 600}


def off_policy(algorithm: str, **options) -> Agent:
    env = "CartPole-v1" if algorithm == "dqn" else "Pendulum-v1"
    return Agent(
        backend="tianshou",
        algorithm=algorithm,
        env=env,
        seed=0,
        preset="none",
        iteration_steps=50,
        batch_size=32,
        **{algorithm: {**NO_UPDATES, **options}},
    )


def driver(agent: Agent):
    return agent._parts.driver


def distinctive(agent: Agent, n: int = 12) -> TransitionBatch:
    """Two episodes (the first terminated, the second unfinished) of values no env produces."""
    shape = agent.observation_space.shape
    rows = np.arange(n, dtype=np.float32)
    observations = np.full((n, *shape), 50.0, np.float32) + rows.reshape(-1, *[1] * len(shape))
    space = agent.action_space
    if isinstance(space, gym.spaces.Discrete):
        actions = np.arange(n) % space.n
    else:
        actions = np.linspace(space.low, space.high, n).astype(np.float32)
    first = n // 3
    return TransitionBatch(
        observations=observations,
        actions=actions,
        rewards=1000 + rows,
        next_observations=observations + 0.5,
        terminated=np.arange(n) == first - 1,
        truncated=np.zeros(n),
        episode_ids=np.where(np.arange(n) < first, 7, 8),
        env_ids=np.zeros(n),
    )


def assert_added_rows_sampled(agent: Agent, batch: TransitionBatch) -> None:
    """Every sampled row is a buffer row, and every added row is sampled with its exact values."""
    d = driver(agent)
    sample = d.sample_experience(3000)
    stored = set(np.asarray(d.buffer.rew)[d.buffer.sample_indices(0)].astype(np.float32).tolist())
    assert set(sample.rewards.tolist()) <= stored
    for i in range(len(batch)):
        found = np.flatnonzero(sample.rewards == batch.rewards[i])
        assert len(found), f"added row {i} never sampled"
        row = found[0]
        np.testing.assert_array_equal(sample.observations[row], batch.observations[i])
        np.testing.assert_array_equal(sample.next_observations[row], batch.next_observations[i])
        np.testing.assert_allclose(sample.actions[row], batch.actions[i], atol=1e-6, rtol=0)
        assert sample.actions.dtype == batch.actions.dtype
        assert sample.terminated[row] == batch.terminated[i]
        assert sample.truncated[row] == batch.truncated[i]
    assert set(sample.episode_ids.tolist()) == {-1}
    assert set(sample.env_ids.tolist()) <= set(range(d.buffer.buffer_num))


@pytest.mark.parametrize("algorithm", OFF_POLICY)
def test_added_rows_become_buffer_rows_and_survive_a_checkpoint(algorithm, tmp_path):
    agent = off_policy(algorithm)
    d = driver(agent)
    d.train_iteration()  # the collector is now in the middle of an episode
    batch = distinctive(agent)
    size, steps, counters = d.replay_size(), d.env_steps, saved_counters(d)
    collector_steps = d.collector.collect_step
    d.add_experience(batch)
    assert d.replay_size() == size + len(batch)
    assert d.env_steps == steps and saved_counters(d) == counters
    assert d.collector.collect_step == collector_steps
    assert_added_rows_sampled(agent, batch)

    agent.save(tmp_path / "ckpt")
    loaded = Agent.load(tmp_path / "ckpt")
    assert loaded.replay_size == size + len(batch)
    assert loaded.env_steps == steps
    assert_added_rows_sampled(loaded, batch)
    agent.close()
    loaded.close()


def test_rows_added_to_an_empty_buffer_then_collection_continues():
    agent = off_policy("sac")
    d = driver(agent)
    batch = distinctive(agent)
    d.add_experience(batch)
    assert d.replay_size() == len(batch) and d.env_steps == 0
    report = d.train_iteration()
    assert report.env_steps == 50 and d.replay_size() == len(batch) + 50
    assert_added_rows_sampled(agent, batch)
    agent.close()


def test_added_rows_change_neither_collection_nor_episode_statistics():
    """Rows added while an episode runs: the same episodes (returns, lengths) as without them,
    every collected episode contiguous in the buffer, no n-step walk across added rows."""
    agent, control = off_policy("dqn"), off_policy("dqn")
    d, c = driver(agent), driver(control)
    assert d.train_iteration().episodes == c.train_iteration().episodes
    running = d.buffer.buffers[0]._ep_len
    assert running > 0
    d.add_experience(distinctive(agent, 30))
    for _ in range(3):
        assert d.train_iteration().episodes == c.train_iteration().episodes
    assert d.replay_size() == c.replay_size() + 30
    buffer = d.buffer
    indices = buffer.sample_indices(0)
    following = buffer.next(indices)
    rew, obs, obs_next = buffer.rew, buffer.obs, buffer.obs_next
    for i, j in zip(indices, following, strict=True):
        if i == j:
            continue
        # an n-step walk stays with collected rows or with one added episode
        assert (rew[i] >= 1000) == (rew[j] >= 1000)
        np.testing.assert_array_equal(obs[j], obs_next[i] if rew[i] < 1000 else obs[i] + 1)
    agent.close()
    control.close()


def test_on_policy_algorithms_take_no_external_rows():
    agent = Agent(backend="tianshou", algorithm="ppo", env="CartPole-v1", seed=0, preset="none")
    with pytest.raises(UnsupportedOptionError):
        driver(agent).add_experience(distinctive(agent))
    with pytest.raises(UnsupportedOptionError):
        driver(agent).sample_experience(4)
    agent.close()


def replay(env_id: str, observation: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, float]:
    """The next observation and reward of `env_id` from the state `observation` shows."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    if env_id == "Pendulum-v1":
        env.state = np.array([np.arctan2(observation[1], observation[0]), observation[2]], np.float64)
    else:
        env.state = np.asarray(observation, np.float64)
        env.steps_beyond_terminated = None
    next_observation, reward, *_ = env.step(action if env_id == "Pendulum-v1" else int(action))
    env.close()
    return np.asarray(next_observation), float(reward)


def check_collected(batch: TransitionBatch, reported: list[tuple[float, int]], env_id: str) -> None:
    finished = []
    for episode in batch.episodes():
        assert len(set(episode.env_ids.tolist())) == 1  # an episode stays in its env slot
        np.testing.assert_array_equal(episode.next_observations[:-1], episode.observations[1:])
        assert not (episode.terminated[:-1] | episode.truncated[:-1]).any()
        if episode.terminated[-1] or episode.truncated[-1]:
            finished.append((float(episode.rewards.astype(np.float64).sum()), len(episode)))
            # the true final observation, not the next episode's first
            last = len(episode) - 1
            expected, reward = replay(env_id, episode.observations[last], episode.actions[last])
            np.testing.assert_allclose(episode.next_observations[last], expected, atol=1e-4)
            assert reward == pytest.approx(float(episode.rewards[last]), abs=1e-4)
    assert finished, "the iteration should finish episodes"
    assert sorted(n for _, n in finished) == sorted(n for _, n in reported)
    for (mine, n), (theirs, m) in zip(sorted(finished), sorted(reported), strict=True):
        assert n == m and mine == pytest.approx(theirs, abs=1e-3)


def test_ppo_collected_rows_are_every_step_of_both_env_slots(tmp_path):
    agent = Agent(
        backend="tianshou",
        algorithm="ppo",
        env="CartPole-v1",
        seed=0,
        preset="none",
        n_envs=2,
        iteration_steps=128,
        batch_size=64,
        ppo={"n_epochs": 1},
    )
    d = driver(agent)
    d.set_collecting(True)
    first = d.train_iteration()
    batch = d.take_collected()
    assert len(batch) == first.env_steps == 128
    assert np.array_equal(np.bincount(batch.env_ids), [64, 64])
    assert batch.actions.dtype == np.int64 and set(batch.actions.tolist()) <= {0, 1}
    check_collected(batch, first.episodes, "CartPole-v1")
    # rows per slot in step order: slot 0 first, each slot's rows chained
    slot = batch.take(batch.env_ids == 0)
    assert np.array_equal(batch.env_ids[:64], np.zeros(64))
    assert len(slot.episodes()) == len(set(slot.episode_ids.tolist()))
    assert len(d.take_collected()) == 0

    second = d.train_iteration()
    more = d.take_collected()
    assert len(more) == second.env_steps
    # a slot's running episode keeps its id; every new episode gets a new one
    for env in (0, 1):
        before = batch.episode_ids[batch.env_ids == env]
        after = more.episode_ids[more.env_ids == env]
        assert set(before) & set(after) <= {before[-1]}
    assert not set(more.episode_ids[more.env_ids == 0]) & set(more.episode_ids[more.env_ids == 1])
    d.set_collecting(False)
    d.train_iteration()
    assert len(d.take_collected()) == 0
    # episode ids stay unique over the agent's life: the counter is in the checkpoint
    issued = d.experience.collected.next_episode_id
    assert issued > max(more.episode_ids)
    agent.save(tmp_path / "ckpt")
    loaded = Agent.load(tmp_path / "ckpt")
    assert driver(loaded).experience.collected.next_episode_id == issued
    agent.close()
    loaded.close()


@pytest.mark.parametrize(("algorithm", "learning_starts"), [("sac", 10_000), ("td3", 0)])
def test_off_policy_collected_rows_hold_the_actions_the_env_received(algorithm, learning_starts):
    """Pendulum's dynamics from each row's observation and action give its next observation and
    reward: the action is the one the env got (random warm-up for SAC, actor + noise for TD3)."""
    options = {"learning_starts": learning_starts, "buffer_size": 1000}
    agent = Agent(
        backend="tianshou",
        algorithm=algorithm,
        env="Pendulum-v1",
        seed=0,
        preset="none",
        iteration_steps=400 if learning_starts else 200,
        batch_size=16,
        **{algorithm: options},
    )
    d = driver(agent)
    d.set_collecting(True)
    report = d.train_iteration()
    batch = d.take_collected()
    assert len(batch) == report.env_steps
    assert batch.actions.dtype == np.float32 and batch.actions.shape == (len(batch), 1)
    assert (np.abs(batch.actions) <= 2.0).all()
    check_collected(batch, report.episodes, "Pendulum-v1")
    for row in range(0, len(batch), 7):
        expected, reward = replay("Pendulum-v1", batch.observations[row], batch.actions[row])
        np.testing.assert_allclose(batch.next_observations[row], expected, atol=1e-4)
        assert reward == pytest.approx(float(batch.rewards[row]), abs=1e-4)
    assert batch.infos["backend"] == "tianshou" and batch.infos["algorithm"] == algorithm
    agent.close()


def test_collecting_refuses_a_buffer_smaller_than_one_collection_step():
    agent = off_policy("dqn", buffer_size=2)  # train_freq 4: a collection step adds 4 rows
    with pytest.raises(ExperienceError, match="buffer_size"):
        driver(agent).set_collecting(True)
    agent.close()
