"""The Stable-Baselines3 backend: mapping, iterations, learning rate, persistence, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import polyrl
from polyrl import Agent

TINY = {
    "ppo": {"iteration_steps": 128, "batch_size": 64, "ppo": {"n_epochs": 2}},
    "a2c": {"iteration_steps": 16},
    "dqn": {"iteration_steps": 100, "batch_size": 32, "dqn": {"learning_starts": 50, "buffer_size": 1000}},
    "sac": {"iteration_steps": 100, "batch_size": 32, "sac": {"learning_starts": 50, "buffer_size": 1000}},
    "td3": {"iteration_steps": 100, "batch_size": 32, "td3": {"learning_starts": 50, "buffer_size": 1000}},
}
ENV = {
    "ppo": "CartPole-v1",
    "a2c": "CartPole-v1",
    "dqn": "CartPole-v1",
    "sac": "Pendulum-v1",
    "td3": "Pendulum-v1",
}


def tiny(algorithm: str, **fields) -> Agent:
    settings = {"env": ENV[algorithm], "seed": 0, "preset": "none", **TINY[algorithm], **fields}
    return Agent(backend="sb3", algorithm=algorithm, **settings)


@pytest.mark.parametrize("algorithm", sorted(TINY))
def test_every_algorithm_trains_acts_and_reports(algorithm):
    agent = tiny(algorithm)
    result = agent.train(iterations=2)
    steps = agent.effective_hyperparameters().iteration_steps
    assert [r.env_steps for r in result.records] == [steps, 2 * steps]
    assert all(np.isfinite(r.learning_rate) for r in result.records)
    assert "loss" in result.records[-1].losses
    obs, _ = agent.env_source.make().reset(seed=0)
    action = agent.act(obs)
    assert agent.action_space.contains(action)
    batch = agent.act(np.stack([obs] * 4))
    assert batch.shape[0] == 4 and all(agent.action_space.contains(a) for a in batch)


def test_dqn_on_a_continuous_env_is_rejected_before_training():
    with pytest.raises(
        polyrl.errors.UnsupportedSpaceError, match="sb3/dqn cannot handle the box action space"
    ):
        Agent(backend="sb3", algorithm="dqn", env="Pendulum-v1")


def test_spec_values_are_what_sb3_holds():
    agent = Agent(
        backend="sb3",
        algorithm="ppo",
        env="CartPole-v1",
        gamma=0.97,
        learning_rate=1e-3,
        network={"hidden": [32, 16], "activation": "relu"},
        iteration_steps=256,
        n_envs=2,
        batch_size=32,
        ppo={"n_epochs": 3, "clip_range": 0.1},
    )
    effective = agent.effective_hyperparameters()
    model = agent.native
    assert (effective.gamma, model.gamma) == (0.97, 0.97)
    assert effective.learning_rate == 1e-3
    assert effective.hidden == [32, 16] and effective.activation == "relu"
    assert (model.n_steps, model.n_envs, model.batch_size, model.n_epochs) == (128, 2, 32, 3)
    assert effective.iteration_steps == 256 and effective.native["clip_range"] == 0.1


def test_sac_network_and_td3_noise_mapping():
    sac = tiny("sac", network={"hidden": [40, 30], "activation": "tanh"})
    assert sac.effective_hyperparameters().hidden == [40, 30]
    assert sac.effective_hyperparameters().activation == "tanh"
    td3 = tiny("td3", td3={"action_noise_std": 0.3, "learning_starts": 50})
    assert np.allclose(td3.native.action_noise._sigma, 0.3)


def test_learning_rate_change_reaches_every_optimizer_and_survives_updates():
    agent = tiny("sac")
    agent.learning_rate = 5e-4
    agent.train(iterations=2)
    model = agent.native
    lrs = {g["lr"] for opt in (model.actor.optimizer, model.critic.optimizer) for g in opt.param_groups}
    assert lrs == {5e-4} and agent.learning_rate == 5e-4


def test_backend_options_are_checked_by_name_and_applied():
    with pytest.raises(
        polyrl.errors.UnsupportedOptionError,
        match=r"n_stepz.*did you mean \[.n_steps.\].*Valid keys.*n_steps",
    ):
        tiny("ppo", backend_options={"n_stepz": 3})
    agent = tiny("ppo", backend_options={"normalize_advantage": False, "target_kl": 0.02})
    assert agent.native.normalize_advantage is False and agent.native.target_kl == 0.02


def test_a2c_has_no_batch_size():
    with pytest.raises(polyrl.errors.UnsupportedOptionError, match="no batch size"):
        tiny("a2c", batch_size=32)


def test_same_seed_gives_identical_first_iteration():
    first = tiny("ppo").train(iterations=1).records[0]
    second = tiny("ppo").train(iterations=1).records[0]
    assert first.return_mean == second.return_mean and first.losses == second.losses


def test_save_load_keeps_actions_counters_and_replay_buffer(tmp_path):
    agent = tiny("dqn")
    agent.train(iterations=3)
    agent.save(tmp_path / "dqn")
    assert (tmp_path / "dqn" / "native" / "polyrl_sb3_replay.npz").is_file()  # NumPy, no pickle
    again = Agent.load(tmp_path / "dqn")
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs), again.act(obs))
    assert again.native.replay_buffer.size() == agent.native.replay_buffer.size() == 300
    result = again.train(iterations=1)
    assert result.records[0].iteration == 4 and result.env_steps == 400


def test_dqn_exploration_spans_the_whole_run_not_one_iteration():
    agent = tiny("dqn", dqn={"exploration_fraction": 0.5, "learning_starts": 50})
    result = agent.train(total_steps=1000)
    rates = [r.metrics["exploration_rate"] for r in result.records]
    assert rates == sorted(rates, reverse=True)  # decays monotonically across iterations
    assert rates[1] > 0.5 and rates[-1] == pytest.approx(0.05)


def test_dict_observations_reach_sb3_as_one_vector_for_an_mlp():
    """polyrl encodes Dict observations (sorted keys, flattened): SB3 sees a Box, not MultiInputPolicy."""
    agent = Agent(
        backend="sb3", algorithm="ppo", env=make_dict_env, seed=0, iteration_steps=64, batch_size=32
    )
    agent.train(iterations=1)
    assert agent.native.observation_space.shape == (5,)  # position (2) + velocity (3)
    assert type(agent.native.policy).__name__ == "ActorCriticPolicy"
    encoder = agent.effective_hyperparameters().encoder
    assert encoder is not None and (encoder.kind, encoder.input_shape) == ("mlp", [5])
    raw = agent.env_source.raw_observation_space.sample()
    action = agent.act(raw, deterministic=True)
    assert agent.action_space.contains(action)
    # A list of raw dicts is a batch; it acts as the encoded vectors do.
    encoded = np.concatenate([raw["position"], raw["velocity"]])[None].repeat(2, axis=0)
    assert agent.act([raw, raw], deterministic=True).tolist() == [action, action]
    assert agent.act(encoded, deterministic=True).tolist() == [action, action]


def make_dict_env():
    import gymnasium as gym

    class DictEnv(gym.Env):
        observation_space = gym.spaces.Dict(
            {
                "position": gym.spaces.Box(-1, 1, (2,), np.float32),
                "velocity": gym.spaces.Box(-1, 1, (3,), np.float32),
            }
        )
        action_space = gym.spaces.Discrete(3)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self.observation_space.sample(), {}

        def step(self, action):
            self.t += 1
            return self.observation_space.sample(), float(action == 1), False, self.t >= 10, {}

    return DictEnv()


@pytest.mark.slow
def test_ppo_solves_cartpole_with_defaults():
    agent = Agent(backend="sb3", algorithm="ppo", env="CartPole-v1", seed=0)
    agent.train(total_steps=50_000)
    assert agent.evaluate(episodes=10).return_mean >= 475
