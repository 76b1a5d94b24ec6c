"""The Tianshou backend: mapping, iterations, acting, learning rate, persistence, errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tianshou")

import polyrl
import tianshou.env
from polyrl import Agent

DOC = Path(__file__).resolve().parent.parent / "docs" / "backends" / "tianshou.md"
OFF_POLICY_TINY = {"learning_starts": 50, "buffer_size": 1000}
TINY = {
    "ppo": {"iteration_steps": 128, "batch_size": 64, "ppo": {"n_epochs": 2}},
    "a2c": {"iteration_steps": 16},
    "dqn": {"iteration_steps": 100, "batch_size": 32, "dqn": OFF_POLICY_TINY},
    "sac": {"iteration_steps": 100, "batch_size": 32, "sac": OFF_POLICY_TINY},
    "td3": {"iteration_steps": 100, "batch_size": 32, "td3": OFF_POLICY_TINY},
    "ddpg": {"iteration_steps": 100, "batch_size": 32, "ddpg": OFF_POLICY_TINY},
}
# every algorithm on every action space it declares
CASES = [
    ("ppo", "CartPole-v1"),
    ("ppo", "Pendulum-v1"),
    ("a2c", "CartPole-v1"),
    ("a2c", "Pendulum-v1"),
    ("dqn", "CartPole-v1"),
    ("sac", "Pendulum-v1"),
    ("sac", "CartPole-v1"),
    ("td3", "Pendulum-v1"),
    ("ddpg", "Pendulum-v1"),
]
EXPECTED_LOSSES = {
    "ppo": {"loss", "policy_loss", "value_loss", "entropy_loss"},
    "a2c": {"loss", "policy_loss", "value_loss", "entropy_loss"},
    "dqn": {"loss", "q_loss"},
    "sac": {"loss", "actor_loss", "critic_loss"},
    "td3": {"loss", "actor_loss", "critic_loss"},
    "ddpg": {"loss", "actor_loss", "critic_loss"},
}


def tiny(algorithm: str, env: str = "", **fields) -> Agent:
    default_env = "CartPole-v1" if algorithm in ("ppo", "a2c", "dqn") else "Pendulum-v1"
    settings = {"env": env or default_env, "seed": 0, "preset": "none", **TINY[algorithm], **fields}
    return Agent(backend="tianshou", algorithm=algorithm, **settings)


def observations(agent: Agent, n: int = 16) -> np.ndarray:
    space = agent.observation_space
    rng = np.random.default_rng(1)
    low = np.maximum(space.low, -3)
    high = np.minimum(space.high, 3)
    return rng.uniform(low, high, size=(n, *space.shape)).astype(np.float32)


@pytest.mark.parametrize(("algorithm", "env"), CASES)
def test_every_algorithm_trains_acts_and_reports(algorithm, env):
    agent = tiny(algorithm, env)
    result = agent.train(iterations=2)
    steps = agent.effective_hyperparameters().iteration_steps
    assert steps == TINY[algorithm]["iteration_steps"]
    assert [r.env_steps for r in result.records] == [steps, 2 * steps]
    assert [r.iteration_env_steps for r in result.records] == [steps, steps]
    assert agent.env_steps == 2 * steps
    assert EXPECTED_LOSSES[algorithm] <= result.records[-1].losses.keys()
    assert all(np.isfinite(v) for v in result.records[-1].losses.values())
    obs, _ = agent.env_source.make().reset(seed=0)
    for deterministic in (True, False):
        action = agent.act(obs, deterministic=deterministic)
        assert agent.action_space.contains(action)
        batch = agent.act(observations(agent), deterministic=deterministic)
        assert batch.shape[0] == 16 and all(agent.action_space.contains(a) for a in batch)
    agent.close()


@pytest.mark.parametrize(("algorithm", "env"), [("ppo", "Pendulum-v1"), ("sac", "CartPole-v1"), ("dqn", "")])
def test_deterministic_act_repeats_and_stochastic_act_varies(algorithm, env):
    agent = tiny(algorithm, env, **({"dqn": {"exploration_initial_eps": 1.0}} if algorithm == "dqn" else {}))
    obs = observations(agent, 64)
    np.testing.assert_array_equal(agent.act(obs), agent.act(obs))
    assert not np.array_equal(agent.act(obs, deterministic=False), agent.act(obs, deterministic=False))


def test_continuous_actions_come_back_in_env_scale():
    agent = tiny("td3")  # Pendulum: actions in [-2, 2], the actor outputs [-1, 1]
    obs = observations(agent, 32)
    import torch

    with torch.no_grad():
        raw = agent.native.policy.actor(obs)[0].numpy()
    np.testing.assert_allclose(agent.act(obs), 2.0 * raw, rtol=1e-5, atol=1e-6)


def test_dqn_on_a_continuous_env_is_rejected_before_training():
    with pytest.raises(
        polyrl.errors.UnsupportedSpaceError, match="tianshou/dqn cannot handle the box action space"
    ):
        Agent(backend="tianshou", algorithm="dqn", env="Pendulum-v1")


def test_missing_library_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tianshou" else real(name, *a)
    )
    with pytest.raises(polyrl.errors.BackendNotInstalledError, match=r"pip install 'polyrl\[tianshou\]'"):
        Agent(backend="tianshou", algorithm="ppo", env="CartPole-v1")


def test_spec_values_are_what_tianshou_holds():
    import torch

    agent = Agent(
        backend="tianshou",
        algorithm="ppo",
        env="CartPole-v1",
        gamma=0.97,
        learning_rate=1e-3,
        network={"hidden": [32, 16], "activation": "relu"},
        iteration_steps=256,
        n_envs=2,
        batch_size=32,
        ppo={"n_epochs": 3, "clip_range": 0.1, "gae_lambda": 0.9, "ent_coef": 0.01, "vf_coef": 0.25},
    )
    effective = agent.effective_hyperparameters()
    algorithm = agent.native
    driver = agent._parts.driver
    assert (effective.gamma, algorithm.gamma) == (0.97, 0.97)
    assert effective.learning_rate == 1e-3 == algorithm.optim._optim.param_groups[0]["lr"]
    assert effective.hidden == [32, 16] and effective.activation == "relu"
    net = list(algorithm.policy.actor.preprocess.model.model)
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [32, 16]
    assert all(isinstance(m, torch.nn.ReLU) for m in net if not isinstance(m, torch.nn.Linear))
    critic = [
        m.out_features for m in algorithm.critic.preprocess.model.model if isinstance(m, torch.nn.Linear)
    ]
    assert critic == [32, 16]
    assert (effective.n_envs, driver.venv.env_num, effective.batch_size, effective.iteration_steps) == (
        2,
        2,
        32,
        256,
    )
    params = driver.trainer_params
    assert (params.collection_step_num_env_steps, params.batch_size, params.update_step_num_repetitions) == (
        256,
        32,
        3,
    )
    assert (algorithm.eps_clip, algorithm.gae_lambda, algorithm.ent_coef, algorithm.vf_coef) == (
        0.1,
        0.9,
        0.01,
        0.25,
    )
    assert effective.native["eps_clip"] == 0.1 and effective.native["update_step_num_repetitions"] == 3
    assert agent.train(iterations=1).records[0].iteration_env_steps == 256


def test_off_policy_sections_map_to_tianshou_names():
    td3 = tiny(
        "td3",
        network={"hidden": [40, 30], "activation": "tanh"},
        td3={
            "action_noise_std": 0.3,
            "policy_delay": 3,
            "target_policy_noise": 0.1,
            "target_noise_clip": 0.2,
            "tau": 0.01,
            "train_freq": 2,
            "gradient_steps": 3,
            **OFF_POLICY_TINY,
        },
    )
    native = td3.native
    assert td3.effective_hyperparameters().hidden == [40, 30]
    assert td3.effective_hyperparameters().activation == "tanh"
    assert native.policy.exploration_noise._sigma == 0.3
    assert (native.update_actor_freq, native.policy_noise, native.noise_clip, native.tau) == (
        3,
        0.1,
        0.2,
        0.01,
    )
    params = td3._parts.driver.trainer_params
    assert (
        params.collection_step_num_env_steps == 2 and params.update_step_num_gradient_steps_per_sample == 1.5
    )
    assert td3._parts.driver.buffer.maxsize == 1000
    record = td3.train(iterations=2).records[-1]
    assert record.metrics["gradient_steps"] == 150  # 50 collection steps x 3 gradient steps
    dqn = tiny(
        "dqn", dqn={"target_update_interval": 200, "train_freq": 4, "gradient_steps": 2, **OFF_POLICY_TINY}
    )
    assert dqn.native.target_update_freq == 100  # 200 env steps at 2 updates per 4 steps
    sac = tiny("sac", network={"hidden": [16]}, sac={"ent_coef": 0.1, **OFF_POLICY_TINY})
    assert sac.native.alpha.value == 0.1 and sac.effective_hyperparameters().native["alpha_auto"] is False


def test_learning_rate_change_reaches_every_optimizer_and_survives_updates():
    agent = tiny("sac", network={"hidden": [32, 32]})
    agent.learning_rate = 5e-4
    agent.train(iterations=2)
    native = agent.native
    optimizers = [native.policy_optim._optim, native.critic_optim._optim, native.critic2_optim._optim]
    optimizers.append(native.alpha._optim)
    assert {g["lr"] for opt in optimizers for g in opt.param_groups} == {5e-4}
    assert agent.learning_rate == 5e-4
    assert agent.train(iterations=1).records[0].learning_rate == 5e-4


def test_backend_options_are_checked_by_name_and_applied():
    with pytest.raises(
        polyrl.errors.ConfigurationError,
        match=r"eps_clipp.*did you mean \['eps_clip'.*Valid keys.*eps_clip.*vec_env",
    ):
        tiny("ppo", backend_options={"eps_clipp": 0.3})
    with pytest.raises(polyrl.errors.ConfigurationError, match="vec_env must be 'dummy' or 'subproc'"):
        tiny("ppo", backend_options={"vec_env": "ray"})
    with pytest.raises(polyrl.errors.ConfigurationError, match="PPO refused the settings.*dual_clip"):
        tiny("ppo", backend_options={"dual_clip": 0.5})  # Tianshou requires dual_clip > 1
    agent = tiny(
        "ppo", backend_options={"value_clip": True, "dual_clip": 3.0, "advantage_normalization": False}
    )
    native = agent.native
    assert (native.value_clip, native.dual_clip, native.advantage_normalization) == (True, 3.0, False)
    dqn = tiny("dqn", backend_options={"is_double": False, "n_step_return_horizon": 3})
    assert (dqn.native.is_double, dqn.native.n_step) == (False, 3)
    td3 = tiny("td3", backend_options={"action_bound_method": None})
    assert td3.native.policy.action_bound_method is None


def test_same_seed_gives_identical_first_iteration_and_another_seed_differs():
    first = tiny("ppo").train(iterations=1).records[0]
    second = tiny("ppo").train(iterations=1).records[0]
    other = tiny("ppo", seed=1).train(iterations=1).records[0]
    assert first.return_mean == second.return_mean and first.losses == second.losses
    assert first.losses != other.losses
    sac_first = tiny("sac", network={"hidden": [32]}).train(iterations=1).records[0]
    sac_second = tiny("sac", network={"hidden": [32]}).train(iterations=1).records[0]
    assert sac_first.losses == sac_second.losses and sac_first.return_mean == sac_second.return_mean


def test_training_depends_on_the_seed_only_not_on_other_random_draws():
    alone = tiny("dqn")
    records = alone.train(iterations=2).records
    first, second = tiny("dqn"), tiny("dqn")
    np.random.seed(123)  # user code drawing and seeding between iterations changes nothing
    interleaved = [first.train(iterations=1).records[0]]
    second.train(iterations=1)
    np.random.uniform(size=10)
    first.play(episodes=1, deterministic=False)
    interleaved.append(first.train(iterations=1).records[0])
    for got, expected in zip(interleaved, records, strict=True):
        assert (got.return_mean, got.losses) == (expected.return_mean, expected.losses)


def test_save_load_keeps_actions_optimizer_counters_and_replay_buffer(tmp_path):
    import torch

    agent = tiny("dqn")
    agent.train(iterations=3)
    agent.save(tmp_path / "dqn")
    native_dir = tmp_path / "dqn" / "native"
    assert {p.name for p in native_dir.iterdir()} == {
        "algorithm.pt",
        "polyrl_tianshou.json",
        "polyrl_random_state.npz",
        "replay_buffer.npz",
    }
    again = Agent.load(tmp_path / "dqn")
    obs = observations(agent, 64)
    np.testing.assert_array_equal(agent.act(obs), again.act(obs))
    assert len(again._parts.driver.buffer) == len(agent._parts.driver.buffer) == 300
    np.testing.assert_array_equal(again._parts.driver.buffer.obs[:300], agent._parts.driver.buffer.obs[:300])
    saved_optim = agent.native.optim._optim.state_dict()
    loaded_optim = again.native.optim._optim.state_dict()
    assert [s["step"] for s in saved_optim["state"].values()] == [
        s["step"] for s in loaded_optim["state"].values()
    ]
    for key, tensor in agent.native.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            assert torch.equal(tensor, again.native.state_dict()[key]), key
    assert again.native._iter == agent.native._iter
    result = again.train(iterations=1)
    assert result.records[0].iteration == 4 and result.env_steps == 400
    assert len(again._parts.driver.buffer) == 400 and np.isfinite(result.records[0].losses["loss"])


def test_save_load_on_policy_continues_with_the_same_learning_rate(tmp_path):
    agent = tiny("ppo", env="Pendulum-v1")
    agent.train(iterations=2)
    agent.learning_rate = 1e-4
    agent.save(tmp_path / "ppo")
    assert not (tmp_path / "ppo" / "native" / "replay_buffer.npz").exists()
    again = Agent.load(tmp_path / "ppo")
    obs = observations(agent)
    np.testing.assert_array_equal(agent.act(obs), again.act(obs))
    assert again.learning_rate == 1e-4 and again.env_steps == 256
    assert again.train(iterations=1).records[0].env_steps == 384


def make_cartpole(**kwargs):
    import gymnasium as gym

    return gym.make("CartPole-v1", **kwargs)


@pytest.mark.parametrize("vec_env", ["dummy", "subproc"])
def test_factory_env_with_several_envs(vec_env):
    agent = Agent(
        backend="tianshou",
        algorithm="ppo",
        env=make_cartpole,
        seed=0,
        n_envs=2,
        iteration_steps=64,
        batch_size=32,
        backend_options={"vec_env": vec_env},
    )
    assert agent.spec.env.factory.endswith(":make_cartpole")
    # isinstance: the subprocess one is polyrl's subclass that raises the env errors it is handed
    assert isinstance(
        agent._parts.driver.venv,
        {"dummy": tianshou.env.DummyVectorEnv, "subproc": tianshou.env.SubprocVectorEnv}[vec_env],
    )
    result = agent.train(iterations=2)
    assert [r.env_steps for r in result.records] == [64, 128]
    assert agent.effective_hyperparameters().n_envs == 2
    assert agent.action_space.contains(agent.act(np.zeros(4, dtype=np.float32)))
    agent.close()


def test_dqn_exploration_spans_the_whole_run():
    agent = tiny("dqn", dqn={"exploration_fraction": 0.5, **OFF_POLICY_TINY})
    rates = [r.metrics["exploration_rate"] for r in agent.train(total_steps=1000).records]
    assert rates == sorted(rates, reverse=True)
    assert rates[1] > 0.5 and rates[-1] == pytest.approx(0.05)


def _doc_blocks() -> list[str]:
    text = DOC.read_text()
    return [block.split("```")[0] for block in text.split("```python\n")[1:]]


def test_the_docs_backend_options_example_builds_what_it_says():
    namespace: dict = {"polyrl": polyrl}
    exec(compile(_doc_blocks()[1], str(DOC), "exec"), namespace)
    agent = namespace["agent"]
    assert agent.native.value_clip is True
    assert isinstance(agent._parts.driver.venv, tianshou.env.SubprocVectorEnv)
    agent.close()


@pytest.mark.slow
def test_ppo_solves_cartpole_with_defaults_as_the_docs_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_doc_blocks()[0], str(DOC), "exec"), namespace)
    assert namespace["result"].stop_reason == "solved"
    assert namespace["agent"].evaluate(episodes=10).return_mean >= 475
    assert (tmp_path / "runs" / "tianshou-ppo" / "native" / "algorithm.pt").is_file()
