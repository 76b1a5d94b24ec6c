"""The RLlib backend on every observation polyrl hands a driver: images (RLlib's CNN encoder with
polyrl's conv layers, fed float32 [0, 1] channels-last images), encoded Discrete/Tuple vectors,
normalised vectors; the device the Learner uses.

One local Ray instance serves the module (started by the first agent); each agent trains one or
two tiny iterations, so the checks are about what was built and what survives a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import torch
from polyrl import Agent
from polyrl.errors import DeviceUnavailableError, UnsupportedOptionError
from polyrl.observations.network import resolve_network
from polyrl_rllib import devices, encoders
from polyrl_rllib.params import build_config, read_settings
from polyrl_rllib.state import ALGORITHM_STATE

IMAGE_ENV = {"factory": "polyrl_conformance.envs:make_custom_env", "kwargs": {"observation": "image"}}
#: Enough for RLlib to sample and update once per iteration, on a loaded 2-core machine.
TINY: dict[str, dict[str, Any]] = {
    "ppo": {"iteration_steps": 64, "batch_size": 32, "ppo": {"n_epochs": 1}},
    "dqn": {
        "iteration_steps": 64,
        "batch_size": 16,
        "dqn": {"learning_starts": 32, "buffer_size": 500, "train_freq": 32, "gradient_steps": 1},
    },
    "sac": {
        "iteration_steps": 64,
        "batch_size": 16,
        "network": {"hidden": [32, 32]},
        "sac": {"learning_starts": 32, "buffer_size": 500, "train_freq": 32, "gradient_steps": 1},
    },
}
#: What RLlib's module sees of the custom image env: 12x12x3 floats in [0, 1].
MODULE_SPACE = gym.spaces.Box(0.0, 1.0, (12, 12, 3), np.float32)


def tiny(algorithm: str, env: Any, **fields: Any) -> Agent:
    return Agent(backend="rllib", algorithm=algorithm, env=env, seed=0, **{**TINY[algorithm], **fields})


def env_observations(agent: Agent, n: int = 8) -> np.ndarray:
    """A batch of the env's own observations (its layout and dtype), as `Agent.act` takes them."""
    env = agent.env_source.make(training=False)
    obs, _ = env.reset(seed=3)
    batch = [obs]
    for _ in range(n - 1):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        batch.append(obs)
    env.close()
    return np.stack(batch)


def chw_image_env() -> gym.Env:
    """The custom image env with its channels first (3x12x12), as the Atari preset gives them."""
    from polyrl_conformance.envs import make_custom_env

    space = gym.spaces.Box(0, 255, (3, 12, 12), np.uint8)
    return gym.wrappers.TransformObservation(
        make_custom_env(observation="image"), lambda obs: np.ascontiguousarray(np.moveaxis(obs, -1, 0)), space
    )


def save_and_load(agent: Agent, path: Path) -> Agent:
    agent.save(path)
    native = path / "native"
    assert (native / f"{ALGORITHM_STATE}.npz").is_file() and (native / f"{ALGORITHM_STATE}.json").is_file()
    return Agent.load(path, trust_env_factory=True)  # the suite's own env factory


def assert_same_parameters(one: Agent, other: Agent) -> None:
    before, after = one.parameters(), other.parameters()
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[name], after[name]) for name in before)


@pytest.fixture(scope="module")
def image_agents():
    """PPO and DQN on the custom 12x12x3 uint8 image env, each trained two tiny iterations."""
    agents = {algorithm: tiny(algorithm, IMAGE_ENV) for algorithm in ("ppo", "dqn")}
    records = {algorithm: agent.train(iterations=2).records for algorithm, agent in agents.items()}
    yield agents, records
    for agent in agents.values():
        agent.close()


# -- images -------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["ppo", "dqn"])
def test_an_image_gets_the_resolved_cnn_read_back_from_the_module(image_agents, algorithm):
    agents, records = image_agents
    agent = agents[algorithm]
    assert all(r.losses and all(np.isfinite(v) for v in r.losses.values()) for r in records[algorithm][1:])
    effective = agent.effective_hyperparameters()
    encoder = effective.encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(16, 3, 1)]
    # "valid" padding: 12 -> 10 pixels a side, 16 channels.
    assert encoder.conv_features == 16 * 10 * 10
    assert encoder.input_shape == [12, 12, 3] and encoder.scale == (0.0, 255.0)
    assert (effective.hidden, effective.activation, effective.device) == ([512], "relu", "cpu")
    assert encoder == resolve_network(None, agent.env_source.observation_space).encoder
    # The env runner's envs give the module what `act` converts to: float32 in [0, 1], HxWxC.
    assert agent.native.env_runner.env.single_observation_space == MODULE_SPACE


def test_act_scales_images_as_the_env_runners_do(image_agents):
    agent = image_agents[0]["ppo"]
    obs = env_observations(agent)
    assert obs.dtype == np.uint8 and obs.shape == (8, 12, 12, 3)
    module = agent._parts.driver._module()
    with torch.no_grad():
        logits = module.forward_inference({"obs": torch.as_tensor(obs.astype(np.float32) / 255.0)})
    np.testing.assert_array_equal(agent.act(obs), logits["action_dist_inputs"].argmax(-1).numpy())
    assert agent.act(obs[0]) == agent.act(obs)[0]


@pytest.mark.parametrize("algorithm", ["ppo", "dqn"])
def test_an_image_agent_saves_loads_and_acts_the_same(image_agents, tmp_path, algorithm):
    agent = image_agents[0][algorithm]
    again = save_and_load(agent, tmp_path / "ckpt")
    try:
        obs = env_observations(agent, 16)
        np.testing.assert_array_equal(again.act(obs), agent.act(obs))
        assert_same_parameters(agent, again)
        assert again.effective_hyperparameters().encoder == agent.effective_hyperparameters().encoder
        if algorithm == "dqn":  # the replay buffer holds converted images, under their space
            assert again.replay_size == agent.replay_size > 0
            loaded = again.native.local_replay_buffer.episodes
            saved = agent.native.local_replay_buffer.episodes
            for ours, theirs in zip(loaded, saved, strict=True):
                assert ours.observation_space == theirs.observation_space == MODULE_SPACE
                np.testing.assert_array_equal(ours.get_observations(), theirs.get_observations())
        record = again.train(iterations=1).records[0]
        assert record.losses and all(np.isfinite(v) for v in record.losses.values())
    finally:
        again.close()


def test_a_custom_conv_stack_and_network_are_honoured():
    network = {"hidden": [32], "activation": "tanh", "conv": [[8, 3, 2], [4, 2, 1]]}
    agent = tiny("ppo", IMAGE_ENV, network=network)
    try:
        effective = agent.effective_hyperparameters()
        assert effective.encoder is not None
        assert [(c.channels, c.kernel, c.stride) for c in effective.encoder.conv] == [(8, 3, 2), (4, 2, 1)]
        assert effective.encoder.conv_features == 4 * 4 * 4  # 12 -> 5 -> 4 pixels a side
        assert (effective.hidden, effective.activation) == ([32], "tanh")
        module = agent._parts.driver._module()
        activations = {
            type(m).__name__ for m in module.encoder.actor_encoder.modules() if not list(m.children())
        }
        assert activations == {"Conv2d", "Tanh", "Flatten"}  # "valid": no padding layer
        record = agent.train(iterations=1).records[0]
        assert record.losses and all(np.isfinite(v) for v in record.losses.values())
    finally:
        agent.close()


def test_channels_first_images_are_moved_last():
    """The same images as 3x12x12 give the same module input, so equal weights act alike."""
    last = tiny("ppo", IMAGE_ENV)
    first = tiny("ppo", {"factory": "test_rllib_observations:chw_image_env"})
    try:
        assert first.effective_hyperparameters().encoder.input_shape == [3, 12, 12]
        assert first.native.env_runner.env.single_observation_space == MODULE_SPACE
        assert_same_parameters(first, last)  # same seed, same module
        obs = env_observations(last, 16)
        np.testing.assert_array_equal(first.act(np.moveaxis(obs, -1, 1)), last.act(obs))
    finally:
        first.close()
        last.close()


def test_minatar_bool_planes_build_and_act():
    agent = tiny("ppo", "MinAtar/Breakout-v1")
    try:
        obs = env_observations(agent, 4)
        assert obs.dtype == np.bool_ and obs.shape == (4, 10, 10, 4)
        actions = agent.act(obs)
        assert actions.shape == (4,) and all(agent.env_source.action_space.contains(int(a)) for a in actions)
        encoder = agent.effective_hyperparameters().encoder
        assert encoder is not None and encoder.scale == (0.0, 1.0)
        assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(16, 3, 1)]
    finally:
        agent.close()


def test_full_size_pong_gets_the_nature_cnn_without_wrappers():
    agent = tiny("ppo", "ALE/Pong-v5", preset="none")  # the ppo-atari preset would add the atari wrapper
    try:
        encoder = agent.effective_hyperparameters().encoder
        assert encoder is not None and encoder.input_shape == [210, 160, 3]
        assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [
            (32, 8, 4),
            (64, 4, 2),
            (64, 3, 1),
        ]
        assert encoder.conv_features == 64 * 22 * 16
        obs = env_observations(agent, 1)
        assert agent.env_source.action_space.contains(agent.act(obs[0]))
    finally:
        agent.close()


# -- encoded and normalised vectors -------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "algorithm", "width"), [("FrozenLake-v1", "ppo", 16), ("Blackjack-v1", "dqn", 45)]
)
def test_discrete_and_tuple_observations_train_save_load_and_act(tmp_path, env, algorithm, width):
    agent = tiny(algorithm, env)
    try:
        agent.train(iterations=2)
        encoder = agent.effective_hyperparameters().encoder
        assert encoder is not None and encoder.kind == "mlp" and encoder.input_shape == [width]
        again = save_and_load(agent, tmp_path / "ckpt")
        try:
            obs = env_observations(agent, 16)
            np.testing.assert_array_equal(again.act(obs), agent.act(obs))
            raw, _ = gym.make(env).reset(seed=1)  # as the env gives it: the core encodes it
            assert again.act(raw) == agent.act(raw)
            assert_same_parameters(agent, again)
        finally:
            again.close()
    finally:
        agent.close()


def test_normalised_pendulum_saves_loads_and_acts_the_same(tmp_path):
    normalize = {"observations": True, "rewards": True}
    agent = tiny("sac", "Pendulum-v1", normalize=normalize, env_kwargs={"max_episode_steps": 50})
    try:
        records = agent.train(iterations=2).records
        # RLlib's env runner sampled through the agent's own statistics (not a pickled copy)...
        normalizer = agent.env_source.normalizer
        assert normalizer is not None and normalizer.observations is not None
        assert normalizer.observations.count > agent.env_steps == 128
        # ...and the two 50-step episodes are reported with their raw returns.
        assert sum(r.iteration_episodes for r in records) == 2
        assert all(r.episode_length_mean == 50 for r in records if r.iteration_episodes)
        again = save_and_load(agent, tmp_path / "ckpt")
        try:
            assert again.env_source.normalizer is not None
            obs = env_observations(agent, 16)  # raw observations: each agent normalises them
            np.testing.assert_array_equal(again.act(obs), agent.act(obs))
        finally:
            again.close()
    finally:
        agent.close()


def test_normalize_with_remote_env_runners_is_refused_at_creation():
    with pytest.raises(UnsupportedOptionError, match="normalize cannot be combined with .*num_env_runners=1"):
        Agent(
            backend="rllib",
            algorithm="ppo",
            env="Pendulum-v1",
            normalize={"observations": True},
            backend_options={"num_env_runners": 1},
        )


# -- mapping and device -------------------------------------------------------------------------
def test_the_model_config_of_vectors_is_polyrls_mlp_and_of_images_the_explicit_cnn():
    from polyrl import AgentSpec

    vector = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    spec = AgentSpec(backend="rllib", algorithm="ppo", env="CartPole-v1")
    assert encoders.model_config(spec, vector) == {
        "fcnet_hiddens": [64, 64],
        "fcnet_activation": "Tanh",
        "head_fcnet_hiddens": [],
    }
    image = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # channels first, as the Atari preset
    model = encoders.model_config(spec, image)
    assert model["conv_filters"] == [
        [32, [8, 8], 4, "valid"],
        [64, [4, 4], 2, "valid"],
        [64, [3, 3], 1, "valid"],
    ]
    assert (model["conv_activation"], model["head_fcnet_hiddens"], model["head_fcnet_activation"]) == (
        "ReLU",
        [512],
        "ReLU",
    )
    assert encoders.module_space(image) == gym.spaces.Box(0.0, 1.0, (84, 84, 4), np.float32)
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)
    converted = encoders.ObservationAdapter(image)(frames)
    assert converted.dtype == np.float32 and converted.shape == (2, 84, 84, 4)
    np.testing.assert_array_equal(converted, np.moveaxis(frames, 1, -1).astype(np.float32) / 255.0)


def test_cpu_is_reported_and_cuda_maps_to_a_gpu_learner(image_agents):
    from polyrl import AgentSpec

    assert image_agents[0]["ppo"].effective_hyperparameters().device == "cpu"
    spec = AgentSpec(backend="rllib", algorithm="ppo", env="CartPole-v1", device="cuda:1")
    config = build_config(spec, "CartPole-v1", read_settings(spec), None, "cuda:1")
    assert (config.num_gpus_per_learner, config.local_gpu_idx) == (1, 1)
    assert devices.learner_resources("cpu") == {"num_gpus_per_learner": 0}
    # Remote GPU Learners on a Ray instance without GPUs (this one, started by the fixture's
    # agents) are refused instead of waiting forever for them.
    spec = spec.model_copy(update={"backend_options": {"num_learners": 1}})
    config = build_config(spec, "CartPole-v1", read_settings(spec), None, "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="need 1 GPUs, but the Ray cluster has 0"):
            devices.check_learner_gpus(config)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_at_creation():
    with pytest.raises(DeviceUnavailableError, match="'cuda' is not available"):
        Agent(backend="rllib", algorithm="ppo", env="CartPole-v1", device="cuda")
