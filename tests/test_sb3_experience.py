"""The SB3 driver's shared experience: external rows in its replay buffer, collected rows out.

The driver is called directly (`agent._parts.driver`): these tests check what the backend does
with SB3's buffers, whatever the core builds on top of it.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from polyrl import Agent
from polyrl.errors import ExperienceError
from polyrl.experience.batch import TransitionBatch

# Off-policy agents that never train here (learning_starts beyond every test's steps).
OFF_POLICY = {
    "dqn": ("CartPole-v1", {"iteration_steps": 60, "batch_size": 16}),
    "sac": ("Pendulum-v1", {"iteration_steps": 60, "batch_size": 16}),
    "td3": ("Pendulum-v1", {"iteration_steps": 60, "batch_size": 16}),
}
# CartPole ends an episode when |x| > 2.4 or |angle| > 12 degrees.
X_LIMIT, ANGLE_LIMIT = 2.4, 12 * 2 * np.pi / 360


def off_policy(algorithm: str, buffer_size: int = 500, **fields) -> Agent:
    env, settings = OFF_POLICY[algorithm]
    native = {"learning_starts": 10_000, "buffer_size": buffer_size}
    settings = {**settings, algorithm: native, **fields}
    return Agent(backend="sb3", algorithm=algorithm, env=env, seed=0, preset="none", **settings)


def ppo(**fields) -> Agent:
    settings = {"iteration_steps": 128, "batch_size": 64, "n_envs": 2, "ppo": {"n_epochs": 1}, **fields}
    return Agent(backend="sb3", algorithm="ppo", env="CartPole-v1", seed=0, preset="none", **settings)


def distinctive(agent: Agent, rows: int) -> TransitionBatch:
    """Rows no env step produces: rewards 1000 + i, observations 50 + ..., every flag combination."""
    rng = np.random.default_rng(1)
    shape = agent.observation_space.shape
    space = agent.action_space
    if hasattr(space, "n"):
        actions = rng.integers(0, int(space.n), size=rows)
    else:
        actions = rng.uniform(space.low, space.high, size=(rows, *space.shape)).astype(np.float32)
        actions[0], actions[1] = space.low, space.high  # the bounds survive SB3's scaling
    return TransitionBatch(
        observations=50 + rng.normal(size=(rows, *shape)).astype(np.float32),
        actions=actions,
        rewards=1000 + np.arange(rows),
        next_observations=-50 + rng.normal(size=(rows, *shape)).astype(np.float32),
        terminated=np.arange(rows) % 3 == 1,
        truncated=np.arange(rows) % 3 == 2,
        episode_ids=np.arange(rows) // 3,
        env_ids=np.zeros(rows),
    )


def counters(agent: Agent) -> tuple[int, ...]:
    model = agent.native
    return (agent._parts.driver.env_steps, model.num_timesteps, model._episode_num, model._n_updates)


def assert_added_rows_sampled(agent: Agent, batch: TransitionBatch, collected: int) -> None:
    """A big sample holds only buffer rows: every added row exactly, and collected rows."""
    np.random.seed(0)  # SB3 samples with the caller's global generator
    sample = agent._parts.driver.sample_experience(4000)
    assert len(sample) == 4000 and set(sample.episode_ids) == {-1} and set(sample.env_ids) == {-1}
    added = sample.rewards >= 1000
    assert set(sample.rewards[added].astype(int)) == set(range(1000, 1000 + len(batch)))
    rows = sample.rewards[added].astype(int) - 1000
    np.testing.assert_array_equal(sample.observations[added], batch.observations[rows])
    np.testing.assert_array_equal(sample.next_observations[added], batch.next_observations[rows])
    np.testing.assert_allclose(sample.actions[added], batch.actions[rows], rtol=0, atol=1e-6)
    # What SB3's learner sees: a time-limit cut is not an end (its sample drops `timeouts`).
    np.testing.assert_array_equal(sample.terminated[added], batch.terminated[rows])
    assert not sample.truncated.any()
    assert sample.actions.dtype == batch.actions.dtype and agent.action_space.contains(sample.actions[0])
    # Every sampled row is a row of SB3's buffer (the added ones and the collected ones).
    buffer = agent.native.replay_buffer
    filled = buffer.size()
    stored = {
        (obs.tobytes(), next_obs.tobytes(), float(reward))
        for obs, next_obs, reward in zip(
            buffer.observations[:filled, 0],
            buffer.next_observations[:filled, 0],
            buffer.rewards[:filled, 0],
            strict=True,
        )
    }
    assert len(stored) == collected + len(batch)
    assert all(
        (obs.tobytes(), next_obs.tobytes(), float(reward)) in stored
        for obs, next_obs, reward in zip(
            sample.observations, sample.next_observations, sample.rewards, strict=True
        )
    )
    assert (~added).sum() > 0


@pytest.mark.parametrize("algorithm", sorted(OFF_POLICY))
def test_added_rows_are_ordinary_buffer_rows(algorithm, tmp_path):
    agent = off_policy(algorithm)
    driver = agent._parts.driver
    driver.train_iteration()  # 60 collected rows
    before, size = counters(agent), agent.replay_size
    batch = distinctive(agent, 30)
    driver.add_experience(batch)
    assert agent.replay_size == size + 30 == 90
    assert counters(agent) == before
    assert_added_rows_sampled(agent, batch, collected=size)

    agent.save(tmp_path / algorithm)
    again = Agent.load(tmp_path / algorithm)
    assert again.replay_size == 90 and counters(again) == before
    assert_added_rows_sampled(again, batch, collected=size)
    agent.close()
    again.close()


def test_box_actions_are_stored_scaled_as_sb3_stores_its_own():
    agent = off_policy("sac")
    batch = distinctive(agent, 4)
    agent._parts.driver.add_experience(batch)
    stored = agent.native.replay_buffer.actions[:4, 0]
    space = agent.action_space
    np.testing.assert_allclose(
        stored, 2 * (batch.actions - space.low) / (space.high - space.low) - 1, atol=1e-6
    )
    assert stored[0] == -1 and stored[1] == 1
    agent.close()


def test_rows_are_spread_over_env_slots_in_order():
    agent = off_policy("dqn", n_envs=2)
    driver, buffer = agent._parts.driver, agent.native.replay_buffer
    batch = distinctive(agent, 10)
    driver.add_experience(batch)
    assert agent.replay_size == 10 and buffer.pos == 5
    # Slot 0 holds rows 0-4, slot 1 rows 5-9: each slot's rows in the batch's order.
    np.testing.assert_array_equal(buffer.rewards[:5].T, batch.rewards.reshape(2, 5))
    np.testing.assert_array_equal(buffer.observations[:5, 1], batch.observations[5:])
    np.testing.assert_array_equal(buffer.dones[:5].T.ravel(), batch.terminated | batch.truncated)
    np.testing.assert_array_equal(buffer.timeouts[:5].T.ravel(), batch.truncated)
    with pytest.raises(ExperienceError, match="multiple of 2 rows; got 7"):
        driver.add_experience(distinctive(agent, 7))
    assert agent.replay_size == 10 and agent.env_steps == 0
    agent.close()


def test_actions_outside_the_space_and_empty_buffers_are_refused():
    agent = off_policy("td3")
    driver = agent._parts.driver
    with pytest.raises(ExperienceError, match="replay buffer is empty"):
        driver.sample_experience(3)
    batch = distinctive(agent, 3)
    with pytest.raises(ExperienceError, match="outside the env's action space"):
        driver.add_experience(batch.model_copy(update={"actions": batch.actions * 3}))
    assert agent.replay_size == 0
    agent.close()


def assert_slot_order(batch: TransitionBatch) -> None:
    """Each env slot's rows in step order: an episode's rows chain, episodes follow each other."""
    for slot in np.unique(batch.env_ids):
        rows = batch.take(batch.env_ids == slot)
        ended = rows.terminated | rows.truncated
        same_episode = rows.episode_ids[1:] == rows.episode_ids[:-1]
        np.testing.assert_array_equal(same_episode, ~ended[:-1])  # a new id exactly after each end
        np.testing.assert_array_equal(
            rows.next_observations[:-1][~ended[:-1]], rows.observations[1:][~ended[:-1]]
        )
        # An ended episode's next observation is its true final one, not the next episode's first.
        assert not np.any(
            np.all(rows.next_observations[:-1][ended[:-1]] == rows.observations[1:][ended[:-1]], axis=1)
        )


def finished_returns(batch: TransitionBatch) -> list[tuple[float, int]]:
    return sorted(
        (float(np.sum(episode.rewards, dtype=np.float64)), len(episode))
        for episode in batch.episodes()
        if episode.terminated[-1] or episode.truncated[-1]
    )


def test_ppo_collects_every_env_step_per_slot():
    agent = ppo()
    driver = agent._parts.driver
    driver.set_collecting(True)
    report = driver.train_iteration()
    batch = driver.take_collected()
    assert len(batch) == report.env_steps == 128
    assert list(batch.env_ids) == [0] * 64 + [1] * 64
    assert_slot_order(batch)
    final = batch.next_observations[batch.terminated]
    assert len(final) > 0 and np.all((np.abs(final[:, 0]) > X_LIMIT) | (np.abs(final[:, 2]) > ANGLE_LIMIT))
    assert not batch.truncated.any()  # CartPole's 500-step limit is beyond 64 steps per slot
    assert finished_returns(batch) == sorted(report.episodes)
    assert batch.log_probs is not None and batch.values is not None
    assert np.all(batch.log_probs < 0) and np.all(np.isfinite(batch.values))
    assert batch.actions.dtype == np.int64 and set(batch.actions) <= {0, 1}
    assert batch.infos["backend"] == "sb3" and batch.infos["algorithm"] == "ppo"

    assert len(driver.take_collected()) == 0  # taken: forgotten
    report = driver.train_iteration()
    more = driver.take_collected()
    assert len(more) == report.env_steps
    for slot in (0, 1):  # the episodes under way continue, with their ids
        last, first = (
            batch.take(batch.env_ids == slot).take(slice(-1, None)),
            more.take(more.env_ids == slot).take(slice(1)),
        )
        assert first.episode_ids[0] == last.episode_ids[0]
        np.testing.assert_array_equal(first.observations, last.next_observations)
    assert set(more.episode_ids) & set(batch.episode_ids) == {
        batch.episode_ids[batch.env_ids == 0][-1],
        batch.episode_ids[batch.env_ids == 1][-1],
    }

    # Off and on again without env steps in between (two train() calls): the episodes go on.
    driver.set_collecting(False)
    driver.set_collecting(True)
    driver.train_iteration()
    then = driver.take_collected()
    for slot in (0, 1):
        assert then.episode_ids[then.env_ids == slot][0] == more.episode_ids[more.env_ids == slot][-1]
    # Steps made while off are not collected, and the episodes under way then get new ids.
    driver.set_collecting(False)
    driver.train_iteration()
    assert len(driver.take_collected()) == 0
    driver.set_collecting(True)
    driver.train_iteration()
    assert driver.take_collected().episode_ids.min() > then.episode_ids.max()
    agent.close()


def test_collecting_changes_nothing_the_agent_learns(tmp_path):
    collecting, plain = ppo(), ppo()
    collecting._parts.driver.set_collecting(True)
    for agent in (collecting, plain):
        agent._parts.driver.train_iteration()
    for name, value in plain.parameters().items():
        np.testing.assert_array_equal(collecting.parameters()[name], value)
    # Episode ids stay unique over save and load.
    used = collecting._parts.driver.take_collected().episode_ids.max()
    collecting.save(tmp_path / "ppo")
    again = Agent.load(tmp_path / "ppo")
    again._parts.driver.set_collecting(True)
    again._parts.driver.train_iteration()
    assert again._parts.driver.take_collected().episode_ids.min() > used
    for agent in (collecting, plain, again):
        agent.close()


@pytest.mark.parametrize("algorithm", sorted(OFF_POLICY))
def test_off_policy_collects_the_rows_sb3_stores(algorithm):
    agent = off_policy(algorithm, iteration_steps=250)  # Pendulum's episodes end by its 200-step limit
    driver = agent._parts.driver
    driver.set_collecting(True)
    report = driver.train_iteration()
    batch = driver.take_collected()
    n = report.env_steps  # 250, or DQN's next multiple of its train_freq (4)
    assert len(batch) == n >= 250 and set(batch.env_ids) == {0}
    assert_slot_order(batch)
    returns, expected = finished_returns(batch), sorted(report.episodes)
    assert [length for _, length in returns] == [length for _, length in expected]
    # float32 rewards against the Monitor's float64 sum (rounded to 6 decimals)
    assert [r for r, _ in returns] == pytest.approx([r for r, _ in expected], rel=1e-6)
    assert batch.truncated.any() if algorithm != "dqn" else batch.terminated.any()
    # Row for row what SB3 put into its own replay buffer (which keeps the true final observations).
    buffer = agent.native.replay_buffer
    np.testing.assert_array_equal(batch.observations, buffer.observations[:n, 0])
    np.testing.assert_array_equal(batch.next_observations, buffer.next_observations[:n, 0])
    np.testing.assert_array_equal(batch.rewards, buffer.rewards[:n, 0])
    np.testing.assert_array_equal(batch.terminated | batch.truncated, buffer.dones[:n, 0])
    np.testing.assert_array_equal(batch.truncated, buffer.timeouts[:n, 0])
    stored = buffer.actions[:n, 0]
    if algorithm == "dqn":
        np.testing.assert_array_equal(batch.actions, stored[:, 0])
    else:
        np.testing.assert_allclose(agent.native.policy.scale_action(batch.actions), stored, atol=1e-6)
        assert batch.log_probs is None and np.all(np.abs(batch.actions) <= 2)
    agent.close()


IMAGE_ENV = {
    "factory": "polyrl_conformance.envs:make_custom_env",
    "kwargs": {"action": "discrete", "observation": "image"},
}


def test_images_sb3_holds_channels_first_come_and_go_in_the_agents_layout():
    agent = Agent(
        backend="sb3",
        algorithm="dqn",
        env=IMAGE_ENV,
        seed=0,
        iteration_steps=40,
        batch_size=16,
        dqn={"learning_starts": 10_000, "buffer_size": 200},
    )
    driver, buffer = agent._parts.driver, agent.native.replay_buffer
    shape = agent.observation_space.shape  # (12, 12, 3): SB3 holds (3, 12, 12)
    assert buffer.observations.shape[2:] == (shape[2], shape[0], shape[1])
    driver.set_collecting(True)
    driver.train_iteration()
    batch = driver.take_collected()
    assert batch.observations.shape == (40, *shape) and batch.observations.dtype == np.uint8
    np.testing.assert_array_equal(batch.observations, buffer.observations[:40, 0].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(
        batch.next_observations, buffer.next_observations[:40, 0].transpose(0, 2, 3, 1)
    )

    rng = np.random.default_rng(0)
    added = batch.model_copy(
        update={
            "observations": rng.integers(0, 256, size=(40, *shape), dtype=np.uint8),
            "next_observations": rng.integers(0, 256, size=(40, *shape), dtype=np.uint8),
            "rewards": 1000 + np.arange(40, dtype=np.float32),
        }
    )
    driver.add_experience(added)
    assert agent.replay_size == 80
    np.random.seed(0)
    sample = driver.sample_experience(500)
    assert sample.observations.shape == (500, *shape)
    mine = sample.rewards >= 1000
    rows = sample.rewards[mine].astype(int) - 1000
    assert mine.any() and (~mine).any()
    np.testing.assert_array_equal(sample.observations[mine], added.observations[rows])
    np.testing.assert_array_equal(sample.next_observations[mine], added.next_observations[rows])
    np.testing.assert_array_equal(sample.actions[mine], added.actions[rows])
    agent.close()
