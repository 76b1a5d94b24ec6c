"""The RLlib backend: mapping, iterations, acting, learning rate, persistence, Ray runtime, errors.

The fast tests share one in-process local Ray instance (started by the first agent) and one
trained tiny agent per algorithm (module-scoped). The slow tests start a separate Ray head node
(its client runs in a subprocess, since one process talks to one Ray instance) and check that
the default PPO settings solve CartPole-v1.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import polyrl
from polyrl import Agent
from polyrl_rllib import BACKEND

TINY = BACKEND.conformance_overrides
ENV = {
    "ppo": "CartPole-v1",
    "appo": "CartPole-v1",
    "impala": "CartPole-v1",
    "dqn": "CartPole-v1",
    "sac": "Pendulum-v1",
}
OBS_SEED = 0


def tiny(algorithm: str, **fields) -> Agent:
    settings = {"env": ENV[algorithm], "seed": 0, "preset": "none", **TINY[algorithm], **fields}
    return Agent(backend="rllib", algorithm=algorithm, **settings)


def observations(agent: Agent, n: int = 8) -> np.ndarray:
    env = agent.env_source.make()
    obs, _ = env.reset(seed=OBS_SEED)
    batch = [obs]
    for _ in range(n - 1):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        batch.append(obs)
    return np.stack(batch)


def make_cartpole() -> gym.Env:
    """A factory env (not a registered id)."""
    return gym.make("CartPole-v1")


class _Exploding(gym.Wrapper):
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps > 5:
            raise ValueError("the reactor melted at step 6")
        return self.env.step(action)


def exploding_cartpole() -> gym.Env:
    """An env whose step raises after 5 steps."""
    return _Exploding(gym.make("CartPole-v1"))


@pytest.fixture(scope="module")
def trained():
    """One tiny agent per algorithm, trained for two iterations, with its records."""
    cache: dict[str, tuple[Agent, list]] = {}

    def get(algorithm: str) -> tuple[Agent, list]:
        if algorithm not in cache:
            agent = tiny(algorithm)
            cache[algorithm] = (agent, agent.train(iterations=2).records)
        return cache[algorithm]

    yield get
    for agent, _ in cache.values():
        agent.close()


@pytest.mark.parametrize("algorithm", sorted(TINY))
def test_every_algorithm_trains_acts_and_reports(trained, algorithm):
    agent, records = trained(algorithm)
    steps = agent.effective_hyperparameters().iteration_steps
    assert [r.env_steps for r in records] == [steps, 2 * steps]
    assert [r.iteration_env_steps for r in records] == [steps, steps]
    assert agent.env_steps == 2 * steps and agent.iterations == 2
    assert all(np.isfinite(r.learning_rate) for r in records)
    assert "loss" in records[-1].losses and all(np.isfinite(v) for v in records[-1].losses.values())
    expected = {
        "ppo": "value_loss",
        "appo": "value_loss",
        "impala": "value_loss",
        "dqn": "q_loss",
        "sac": "critic_loss",
    }[algorithm]
    assert expected in records[-1].losses
    for record in records:
        if record.iteration_episodes:
            assert record.return_min <= record.return_mean <= record.return_max
    obs = observations(agent)
    action = agent.act(obs[0])
    assert agent.action_space.contains(action)
    batch = agent.act(obs)
    assert batch.shape[0] == len(obs) and all(agent.action_space.contains(a) for a in batch)
    stochastic = agent.act(obs, deterministic=False)
    assert all(agent.action_space.contains(a) for a in stochastic)
    np.testing.assert_array_equal(agent.act(obs), batch)  # deterministic is repeatable
    # A single observation acts like its row of the batch (up to float rounding of batched matmuls).
    np.testing.assert_allclose(np.stack([agent.act(o) for o in obs]), batch, atol=1e-5)


def test_episode_statistics_cover_the_iteration(trained):
    agent, records = trained("ppo")
    # CartPole pays 1 per step, so each finished episode's return equals its length.
    for record in records:
        assert record.iteration_episodes > 0
        assert record.return_mean == pytest.approx(record.episode_length_mean)
    assert agent.episodes == sum(r.iteration_episodes for r in records)


def test_dqn_on_a_continuous_env_is_rejected_before_training():
    with pytest.raises(
        polyrl.errors.UnsupportedSpaceError, match="rllib/dqn cannot handle the box action space"
    ):
        Agent(backend="rllib", algorithm="dqn", env="Pendulum-v1")


def test_spec_values_are_what_rllib_holds():
    agent = Agent(
        backend="rllib",
        algorithm="ppo",
        env="CartPole-v1",
        gamma=0.97,
        learning_rate=1e-3,
        network={"hidden": [32, 16], "activation": "relu"},
        iteration_steps=256,
        n_envs=2,
        batch_size=32,
        ppo={"n_epochs": 3, "clip_range": 0.1, "gae_lambda": 0.9, "ent_coef": 0.01, "vf_coef": 0.7},
    )
    try:
        effective = agent.effective_hyperparameters()
        config = agent.native.config
        assert (effective.gamma, config.gamma) == (0.97, 0.97)
        assert effective.learning_rate == 1e-3 and config.lr == 1e-3
        assert effective.hidden == [32, 16] and effective.activation == "relu"
        assert (config.train_batch_size_per_learner, config.num_envs_per_env_runner) == (256, 2)
        assert (config.minibatch_size, config.num_epochs, config.clip_param) == (32, 3, 0.1)
        assert (config.lambda_, config.entropy_coeff, config.vf_loss_coeff) == (0.9, 0.01, 0.7)
        assert (effective.n_envs, effective.batch_size, effective.iteration_steps) == (2, 32, 256)
        assert effective.native["clip_param"] == 0.1 and effective.native["num_epochs"] == 3
        record = agent.train(iterations=1).records[0]
        # RLlib stops sampling a vector env once it has the batch: up to n_envs - 1 steps more.
        assert 256 <= record.iteration_env_steps <= 257
    finally:
        agent.close()


def test_dqn_exploration_fraction_spans_the_planned_run_as_on_sb3_and_tianshou():
    """exploration_fraction is a fraction of the train() call's planned end (lifetime steps),
    set before every iteration: not of a fixed horizon RLlib would otherwise decay over."""
    explore = {"exploration_initial_eps": 1.0, "exploration_final_eps": 0.1, "exploration_fraction": 0.5}
    dqn = tiny("dqn", dqn={"learning_starts": 10_000, **explore})
    try:
        steps = dqn.effective_hyperparameters().iteration_steps
        dqn.train(total_steps=2 * steps)
        assert dqn.native.config.epsilon == [[0, 1.0], [steps, 0.1]]  # half of the planned run
        assert dqn.native.env_runner.module.epsilon_schedule.get_current_value() == pytest.approx(0.1)
        dqn.train(total_steps=4 * steps)  # planned end: 6 iterations' steps over the agent's life
        assert dqn.native.config.epsilon == [[0, 1.0], [3 * steps, 0.1]]
    finally:
        dqn.close()


def test_off_policy_sections_map_to_rllib_names():
    dqn = tiny(
        "dqn",
        dqn={
            "learning_starts": 60,
            "buffer_size": 2000,
            "target_update_interval": 300,
            "train_freq": 5,
            "gradient_steps": 2,
            "exploration_initial_eps": 0.5,
            "exploration_final_eps": 0.1,
            "exploration_fraction": 0.2,
        },
    )
    sac = tiny("sac", network={"hidden": [40, 30], "activation": "tanh"}, sac={"ent_coef": 0.2, "tau": 0.01})
    try:
        config = dqn.native.config
        assert config.num_steps_sampled_before_learning_starts == 60
        assert config.replay_buffer_config["capacity"] == 2000
        assert (config.target_network_update_freq, config.rollout_fragment_length) == (300, 5)
        assert config.epsilon == [[0, 0.5], [20_000, 0.1]]
        from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights

        assert calculate_rr_weights(config) == [1, 2]  # two updates per sampled fragment
        effective = sac.effective_hyperparameters()
        assert effective.hidden == [40, 30] and effective.activation == "tanh"
        config = sac.native.config
        assert (config.initial_alpha, config.alpha_lr, config.tau) == (0.2, 0.0, 0.01)
        sac.learning_rate = 1e-3  # a fixed entropy coefficient stays fixed
        learner = sac.native.learner_group._learner
        optimizers = learner.get_optimizers_for_module("default_policy")
        lrs = {name: optimizer.param_groups[0]["lr"] for name, optimizer in optimizers}
        assert lrs == {"qf": 1e-3, "qf_twin": 1e-3, "policy": 1e-3, "alpha": 0.0}
    finally:
        dqn.close()
        sac.close()


def test_learning_rate_change_reaches_the_optimizer_and_sticks(trained):
    agent, _ = trained("ppo")
    agent.learning_rate = 2.5e-4
    learner = agent.native.learner_group._learner
    [(_, optimizer)] = learner.get_optimizers_for_module("default_policy")
    assert optimizer.param_groups[0]["lr"] == 2.5e-4
    assert agent.native.config.lr == 2.5e-4
    record = agent.train(iterations=1).records[0]
    # RLlib's learner re-applies its lr scheduler after each update: the change must survive it.
    assert record.learning_rate == 2.5e-4 and optimizer.param_groups[0]["lr"] == 2.5e-4
    assert agent.effective_hyperparameters().learning_rate == 2.5e-4


@pytest.mark.parametrize("algorithm", ["ppo", "dqn", "sac"])
def test_save_load_keeps_actions_counters_and_training_continues(trained, tmp_path, algorithm):
    agent, _ = trained(algorithm)
    agent.learning_rate = 4e-4
    agent.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "native" / "algorithm").is_dir()
    again = Agent.load(tmp_path / "ckpt")
    try:
        obs = observations(agent, 16)
        np.testing.assert_allclose(again.act(obs), agent.act(obs), atol=1e-6)
        assert (again.env_steps, again.iterations, again.episodes) == (
            agent.env_steps,
            agent.iterations,
            agent.episodes,
        )
        assert again.learning_rate == 4e-4
        before = again.env_steps
        record = again.train(iterations=1).records[0]
        steps = again.effective_hyperparameters().iteration_steps
        assert record.env_steps == before + steps and record.iteration == agent.iterations + 1
        assert record.learning_rate == 4e-4
    finally:
        again.close()


@pytest.mark.parametrize("algorithm", ["dqn", "sac"])
def test_the_replay_buffer_survives_save_load_without_pickle(trained, tmp_path, algorithm):
    agent, records = trained(algorithm)
    size = agent.replay_size
    assert 0 < size <= agent.env_steps and records[-1].metrics["replay_size"] == size
    agent.save(tmp_path / "ckpt")
    native = tmp_path / "ckpt" / "native"
    with np.load(native / "replay_buffer.npz", allow_pickle=False) as arrays:  # no object arrays
        assert arrays.files
    json.loads((native / "replay_buffer.json").read_text())
    again = Agent.load(tmp_path / "ckpt")
    try:
        assert again.replay_size == size
        saved, loaded = agent.native.local_replay_buffer, again.native.local_replay_buffer
        assert loaded.get_added_timesteps() == saved.get_added_timesteps()
        assert loaded._indices == saved._indices and isinstance(loaded._indices[0], tuple)
        assert loaded.rng.bit_generator.state == saved.rng.bit_generator.state
        for ours, theirs in zip(loaded.episodes, saved.episodes, strict=True):
            assert ours.id_ == theirs.id_ and len(ours) == len(theirs)
            np.testing.assert_array_equal(ours.get_observations(), theirs.get_observations())
            np.testing.assert_array_equal(ours.get_actions(), theirs.get_actions())
            np.testing.assert_array_equal(ours.get_rewards(), theirs.get_rewards())
            assert ours.observation_space == theirs.observation_space
            assert ours.action_space == theirs.action_space
        # Everything the optimizers update is back, SAC's entropy temperature included.
        before, after = agent.parameters(), again.parameters()
        assert before.keys() == after.keys()
        assert all(np.array_equal(before[name], after[name]) for name in before)
        # Training continues: the loaded buffer is sampled from (updates at once) and grows.
        record = again.train(iterations=1).records[0]
        assert record.losses and all(np.isfinite(v) for v in record.losses.values())
        assert again.replay_size > size and record.metrics["replay_size"] == again.replay_size
    finally:
        again.close()


def test_replay_state_encoding_round_trips_without_pickle(tmp_path):
    from polyrl_rllib import replay

    box = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    space_dict = {"space": "box", "low": "b64", "high": "b64", "shape": (2,), "dtype": "<f4"}
    state = {
        "episodes": [
            {
                "observations": {"data": np.arange(6, dtype=np.float32).reshape(3, 2), "space": space_dict},
                "infos": {"data": [{}, {"note": "ok", "x": np.float64(1.5)}, {"bad": object()}]},
                "flag": np.bool_(True),
                "_action_space": {"space": "discrete", "n": 3},
            },
            {
                "observations": {"data": np.zeros((1, 2), dtype=np.float32), "space": None},
                "infos": {"data": [{}]},
                "flag": np.bool_(False),
                "_action_space": None,
            },
        ],
        "_indices": [(0, i) for i in range(10)],
        "segments": [0.5 * i for i in range(10)],
        "ints": list(range(12)),
        "pairs": [("a", 1), ("b", 2)],
        "by_int": {1: "one", 2: "two"},
        "tagged": {"__array__": "not a tag"},
        "scalar": np.int32(7),
        "nan": float("nan"),
    }
    dropped = replay.write_state(state, tmp_path, {"observation": space_dict}, {"rng": {"n": 2**100}})
    assert dropped == 1
    tree, extra, places = replay.read_state(tmp_path)
    assert extra == {"rng": {"n": 2**100}}
    first, second = tree["episodes"]
    np.testing.assert_array_equal(first["observations"]["data"], state["episodes"][0]["observations"]["data"])
    np.testing.assert_array_equal(second["observations"]["data"], np.zeros((1, 2), dtype=np.float32))
    assert first["infos"]["data"] == [{}, {"note": "ok", "x": 1.5}, {}]
    assert first["flag"] is np.True_ and isinstance(tree["scalar"], np.int32) and tree["scalar"] == 7
    assert first["observations"]["space"] is None and first["_action_space"] is None  # put back by path
    assert places == [(("episodes", 0, "observations", "space"), "observation")]
    assert tree["_indices"] == state["_indices"] and tree["segments"] == state["segments"]
    assert tree["ints"] == state["ints"] and tree["pairs"] == state["pairs"]
    assert tree["by_int"] == {1: "one", 2: "two"} and tree["tagged"] == {"__array__": "not a tag"}
    assert np.isnan(tree["nan"])

    class Buffer:
        def __init__(self, dim: int) -> None:
            self.space = None
            self.dim = dim

    class Episode:
        def __init__(self) -> None:
            self.observations = Buffer(2)

    holder = type("Holder", (), {"episodes": [Episode(), Episode()]})()
    replay.restore_spaces(holder, places, {"observation": box})
    assert holder.episodes[0].observations.space == box and holder.episodes[1].observations.space is None


@pytest.mark.parametrize("algorithm", ["ppo", "sac", "impala"])
def test_an_iteration_at_learning_rate_zero_leaves_the_parameters_unchanged(algorithm):
    agent = tiny(algorithm)
    try:
        while not agent.train(iterations=1).records[0].losses:  # until updates have started
            assert agent.iterations < 8
        rate = agent.learning_rate
        before = agent.parameters()
        assert before and all(isinstance(v, np.ndarray) for v in before.values())
        agent.learning_rate = 0.0
        record = agent.train(iterations=1).records[0]
        assert record.learning_rate == 0.0 and record.losses
        after = agent.parameters()
        assert all(np.array_equal(before[name], after[name]) for name in before)
        agent.learning_rate = rate
        agent.train(iterations=1)
        changed = agent.parameters()
        assert any(not np.array_equal(after[name], changed[name]) for name in after)
    finally:
        agent.close()


@pytest.mark.parametrize("algorithm", ["ppo", "dqn", "appo"])
def test_agents_trained_alternately_equal_one_trained_alone(algorithm):
    alone, first, second = tiny(algorithm), tiny(algorithm), tiny(algorithm)
    try:
        alone_records = [alone.train(iterations=1).records[0] for _ in range(2)]
        interleaved: list[list] = [[], []]
        for _ in range(2):
            interleaved[0].append(first.train(iterations=1).records[0])
            interleaved[1].append(second.train(iterations=1).records[0])
        expected = alone.parameters()
        for agent, records in zip((first, second), interleaved, strict=True):
            assert [r.losses for r in records] == [r.losses for r in alone_records]
            assert [r.return_mean for r in records] == [r.return_mean for r in alone_records]
            parameters = agent.parameters()
            assert all(np.array_equal(parameters[name], expected[name]) for name in expected)
        # Acting stochastically from one agent does not move another's random stream.
        obs = observations(alone)
        assert np.array_equal(first.act(obs, deterministic=False), second.act(obs, deterministic=False))
    finally:
        for agent in (alone, first, second):
            agent.close()


def test_unseeded_agents_start_from_different_weights():
    one, two = tiny("ppo", seed=None), tiny("ppo", seed=None)
    try:
        a, b = one.parameters(), two.parameters()
        assert any(not np.array_equal(a[name], b[name]) for name in a)
    finally:
        one.close()
        two.close()


def test_a_factory_env_is_registered_and_trains():
    agent = Agent(backend="rllib", algorithm="ppo", env=make_cartpole, seed=1, **TINY["ppo"])
    try:
        record = agent.train(iterations=1).records[0]
        assert record.env_steps == 128 and record.iteration_episodes > 0
        assert agent.native.config.env.startswith("polyrl-")
        assert agent.spec.env.factory == "test_rllib:make_cartpole"
    finally:
        agent.close()


def test_two_agents_share_one_ray_instance(trained):
    import ray
    from polyrl_rllib import runtime

    trained("ppo")
    first = runtime.current()
    agent = tiny("ppo")
    try:
        assert runtime.current() is first and ray.is_initialized()
        assert first.address is None and first.num_cpus >= 1
        # No empty ~/ray_results/<timestamp> per Algorithm: the log dir is a temp dir.
        assert not Path(agent.native.logdir).is_relative_to(Path.home() / "ray_results")
        assert Path(agent.native.logdir).is_relative_to(tempfile.gettempdir())
    finally:
        agent.close()


def test_a_bad_backend_option_names_the_valid_ones():
    with pytest.raises(polyrl.errors.ConfigurationError) as raised:
        tiny("ppo", backend_options={"train_batch_size_per_lerner": 100})
    message = str(raised.value)
    assert "train_batch_size_per_lerner" in message
    assert "did you mean ['train_batch_size_per_learner'" in message
    assert "training(): " in message and "num_epochs" in message and "env_runners(): " in message
    assert "address" in message and "num_learners" in message


def test_backend_options_reach_the_config():
    agent = tiny(
        "ppo",
        backend_options={"vf_clip_param": 5.0, "model_config": {"vf_share_layers": True}, "grad_clip": 0.5},
    )
    try:
        config = agent.native.config
        assert (config.vf_clip_param, config.grad_clip) == (5.0, 0.5)
        assert config.model_config["vf_share_layers"] is True
        assert config.model_config["fcnet_hiddens"] == [64, 64]  # merged, not replaced
    finally:
        agent.close()


def test_more_workers_than_cpus_fail_fast_instead_of_hanging():
    with pytest.raises(polyrl.errors.ConfigurationError, match="need 64 CPUs"):
        tiny("ppo", n_envs=64, backend_options={"num_env_runners": 64})


def test_an_env_failing_in_the_env_runner_names_the_env_and_the_error():
    from polyrl_rllib.driver import EnvRunnerError

    agent = Agent(backend="rllib", algorithm="ppo", env=exploding_cartpole, seed=0, **TINY["ppo"])
    try:
        with pytest.raises(EnvRunnerError) as raised:
            agent.train(iterations=1)
        message = str(raised.value)
        assert "test_rllib:exploding_cartpole" in message
        assert "ValueError: the reactor melted at step 6" in message
        assert isinstance(raised.value, polyrl.PolyrlError)
    finally:
        agent.close()


def test_an_env_failing_in_a_remote_env_runner_names_the_env_and_the_error():
    """RLlib ends a remote env runner with sys.exit(1) on an exception; the error still gets out."""
    import ray.cloudpickle
    from polyrl_rllib.driver import EnvRunnerError

    # This test module is not importable in Ray's worker processes: ship the factory by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        agent = Agent(
            backend="rllib", algorithm="ppo", env=exploding_cartpole, seed=0, **TINY["ppo"],
            backend_options={"num_env_runners": 1, "num_cpus_per_env_runner": 0.5},
        )  # fmt: skip
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    try:
        with pytest.raises(EnvRunnerError, match=r"exploding_cartpole.*ValueError: the reactor melted"):
            agent.train(iterations=1)
    finally:
        agent.close()


def test_a_factory_workers_cannot_import_is_explained():
    agent_or_error = None
    with pytest.raises(
        polyrl.errors.EnvironmentCreationError, match=r"cannot import .*test_rllib.*register_pickle_by_value"
    ):
        agent_or_error = Agent(
            backend="rllib", algorithm="ppo", env=make_cartpole, seed=0, **TINY["ppo"],
            backend_options={"num_env_runners": 1, "num_cpus_per_env_runner": 0.5},
        )  # fmt: skip
        agent_or_error.train(iterations=1)
    if agent_or_error is not None:
        agent_or_error.close()


def test_a_missing_ray_names_the_extra(monkeypatch):
    import importlib.util

    from polyrl.plugins import ensure_installed

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "ray" else real(name, *args)
    )
    with pytest.raises(polyrl.errors.BackendNotInstalledError, match=r"pip install 'polyrl\[rllib\]'"):
        ensure_installed(BACKEND)


# -- slow: a separate Ray head node, and learning ----------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_head(head: subprocess.Popen, timeout: float = 180) -> None:
    """Read `ray start` output until the node is up (it prints "Ray runtime started")."""
    lines: list[str] = []

    def read() -> None:
        for line in head.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("Ray runtime started" in line for line in lines):
            return
        if head.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError("the Ray head node did not start:\n" + "".join(lines[-40:]))


CLIENT = textwrap.dedent(
    """
    import json, sys, polyrl
    agent = polyrl.Agent(backend="rllib", algorithm="ppo", env="CartPole-v1", seed=0,
                         iteration_steps=200, batch_size=50, ppo={"n_epochs": 1},
                         backend_options={"address": sys.argv[1], "num_env_runners": 1})
    record = agent.train(iterations=2).records[-1]
    import ray
    nodes = len(ray.nodes())
    print(json.dumps({"env_steps": record.env_steps, "episodes": agent.episodes, "nodes": nodes,
                      "runners": agent.native.config.num_env_runners}))
    agent.close()
    """
)


@pytest.mark.slow
def test_training_on_a_local_ray_cluster_head_node():
    ray_bin = Path(sys.executable).parent / "ray"
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="polyrl-ray-")  # short: Ray's socket paths must fit 107 bytes
    # A token of its own for this throw-away cluster: Ray sends a token to an explicit address only
    # in RAY_AUTH_MODE=token (see docs/backends/rllib.md).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # fmt: skip
    # --block keeps `ray start` in the foreground so this test stops exactly the node it started
    # (`ray stop` would stop every Ray process of the user on this machine).
    head = subprocess.Popen(
        [
            str(ray_bin), "start", "--head", "--port", str(port), "--num-cpus", "2",
            "--disable-usage-stats", "--include-dashboard", "false",
            "--temp-dir", workdir, "--block",
        ],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_head(head)
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, f"127.0.0.1:{port}"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert client.returncode == 0, client.stderr[-3000:]
        result = json.loads(client.stdout.strip().splitlines()[-1])
        assert result["env_steps"] == 400 and result["runners"] == 1 and result["nodes"] >= 1
        assert result["episodes"] > 0
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` drains and stops its own processes
        try:
            head.wait(timeout=90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)  # anything of this node's session still alive


@pytest.mark.slow
def test_default_ppo_solves_cartpole():
    agent = Agent(backend="rllib", algorithm="ppo", env="CartPole-v1", seed=0)

    class Solved(polyrl.Callback):
        def on_iteration_end(self, context, record):
            trained_well = record.return_mean is not None and record.return_mean >= 475
            if trained_well and agent.evaluate(episodes=10, seed=100).return_mean >= 475:
                context.stop("solved")

    try:
        result = agent.train(polyrl.TrainConfig(total_steps=200_000), callbacks=[Solved()])
        assert result.stop_reason == "solved", result.records[-1]
        assert agent.evaluate(episodes=10, seed=100).return_mean >= 475
    finally:
        agent.close()
