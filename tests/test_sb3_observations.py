"""SB3 and every observation a Gymnasium user brings (issue 17): images get polyrl's CNN exactly
as `resolve_network` describes it, encoded spaces an MLP, normalisation and devices behave."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import torch
from polyrl import Agent
from polyrl.errors import DeviceUnavailableError, UnsupportedOptionError, UnsupportedSpaceError
from polyrl.observations.network import resolve_network
from polyrl.torch_layers import describe_convs

IMAGE_ENV = {
    "factory": "polyrl_conformance.envs:make_custom_env",
    "kwargs": {"action": "discrete", "observation": "image"},
}
BOX_ACTION_IMAGE_ENV = {**IMAGE_ENV, "kwargs": {"action": "box", "observation": "image"}}
TINY = {
    "ppo": {"iteration_steps": 64, "batch_size": 32, "ppo": {"n_epochs": 1}},
    "dqn": {"iteration_steps": 50, "batch_size": 16, "dqn": {"learning_starts": 20, "buffer_size": 500}},
    "sac": {"iteration_steps": 50, "batch_size": 16, "sac": {"learning_starts": 20, "buffer_size": 500}},
}
NO_GPU = not torch.cuda.is_available()


def tiny(algorithm: str, env, **fields) -> Agent:
    return Agent(backend="sb3", algorithm=algorithm, env=env, seed=0, **{**TINY[algorithm], **fields})


def observations(agent: Agent, n: int = 8) -> np.ndarray:
    """A batch of valid observations of the agent's (encoded) observation space, seeded."""
    space = agent.observation_space
    space.seed(0)
    return np.stack([space.sample() for _ in range(n)])


@pytest.mark.parametrize(
    ("algorithm", "env"), [("ppo", IMAGE_ENV), ("dqn", IMAGE_ENV), ("sac", BOX_ACTION_IMAGE_ENV)]
)
def test_an_image_gets_the_default_cnn_trains_and_acts_the_same_after_load(algorithm, env, tmp_path):
    agent = tiny(algorithm, env)
    result = agent.train(iterations=2)
    steps = agent.effective_hyperparameters().iteration_steps
    assert [r.env_steps for r in result.records] == [steps, 2 * steps]
    effective = agent.effective_hyperparameters()
    assert effective.encoder == resolve_network(None, agent.observation_space).encoder
    encoder = effective.encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(16, 3, 1)]
    assert encoder.input_shape == [12, 12, 3] and encoder.scale == (0.0, 255.0)
    assert encoder.conv_features == 16 * 10 * 10
    assert (effective.hidden, effective.activation, effective.device) == ([512], "relu", "cpu")
    assert agent.native.policy.normalize_images is False  # polyrl's encoder scales, SB3 must not
    batch = observations(agent)
    actions = agent.act(batch, deterministic=True)
    assert len(actions) == len(batch) and all(agent.action_space.contains(a) for a in actions)

    agent.save(tmp_path / "image")
    loaded = Agent.load(tmp_path / "image", trust_env_factory=True)
    np.testing.assert_array_equal(loaded.act(batch, deterministic=True), actions)
    assert loaded.effective_hyperparameters().encoder == encoder
    for name, value in agent.parameters().items():  # conv weights included
        np.testing.assert_array_equal(loaded.parameters()[name], value, err_msg=name)


@pytest.mark.parametrize("algorithm", ["ppo", "dqn"])
def test_a_custom_conv_stack_is_built_and_read_back(algorithm):
    network = {"conv": [[8, 4, 2], [6, 3, 1]], "hidden": [32], "activation": "tanh"}
    agent = tiny(algorithm, IMAGE_ENV, network=network)
    effective = agent.effective_hyperparameters()
    encoder = effective.encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(8, 4, 2), (6, 3, 1)]
    assert encoder.conv_features == 6 * 3 * 3  # 12 -> 5 -> 3 pixels a side
    assert (effective.hidden, effective.activation) == ([32], "tanh")
    # The torch modules SB3 holds are those layers, with the activation after each conv.
    policy = agent.native.policy
    extractor = policy.q_net.features_extractor if algorithm == "dqn" else policy.features_extractor
    assert describe_convs(extractor) == [(8, 4, 2), (6, 3, 1)]
    assert [type(m).__name__ for m in extractor.encoder.convs] == [
        "Conv2d",
        "Tanh",
        "Conv2d",
        "Tanh",
        "Flatten",
    ]


def test_conv_layers_on_a_vector_observation_are_refused():
    with pytest.raises(UnsupportedSpaceError, match="network.conv is set but .* is not an image"):
        tiny("ppo", "CartPole-v1", network={"conv": [[8, 3, 1]], "hidden": [16]})


def make_wide_channel_env():
    """uint8 images of shape (12, 3, 12): polyrl reads 12 channels first, SB3 moves axis 2 first."""
    import gymnasium as gym

    class Wide(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (12, 3, 12), np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, True, {}

    return Wide()


def test_sb3_transposing_an_image_does_not_change_the_encoder_polyrl_describes():
    with pytest.warns(UserWarning, match="channels-last"):  # SB3's own rule, which polyrl undoes
        agent = tiny("ppo", make_wide_channel_env)
    assert agent.native.observation_space.shape == (12, 12, 3)  # what SB3's VecTransposeImage made
    encoder = agent.effective_hyperparameters().encoder
    assert encoder == resolve_network(None, agent.observation_space).encoder
    assert encoder is not None and encoder.input_shape == [12, 3, 12]
    conv = agent.native.policy.features_extractor.encoder.convs[0]
    assert conv.in_channels == 12  # polyrl's channel axis, not SB3's
    batch = observations(agent, 4)
    expected = agent.native.policy.features_extractor.encoder(torch.as_tensor(batch))
    tensor, _ = agent.native.policy.obs_to_tensor(batch)  # what predict() hands the policy
    features = agent.native.policy.extract_features(tensor, agent.native.policy.features_extractor)
    torch.testing.assert_close(features, expected)
    assert agent.act(batch).shape == (4,)


def test_minatar_bool_planes_train_and_act():
    agent = tiny("ppo", "MinAtar/Breakout-v1")
    record = agent.train(iterations=1).records[0]
    assert record.env_steps == 64
    encoder = agent.effective_hyperparameters().encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert encoder.input_shape == [10, 10, 4] and encoder.scale == (0.0, 1.0)  # bool planes, channels last
    obs, _ = agent.env_source.make(training=False).reset(seed=0)
    assert obs.dtype == np.bool_ and agent.action_space.contains(agent.act(obs))


def test_atari_preset_gets_the_nature_cnn():
    agent = tiny("ppo", "ALE/Pong-v5", wrappers=["atari"])
    effective = agent.effective_hyperparameters()
    encoder = effective.encoder
    assert encoder is not None and encoder.input_shape == [4, 84, 84]
    assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
    assert encoder.conv_features == 64 * 7 * 7 and effective.hidden == [512]
    env = agent.env_source.make(training=False)
    obs, _ = env.reset(seed=0)
    env.close()
    actions = agent.act(np.stack([obs, obs]), deterministic=True)
    assert actions.shape == (2,) and actions[0] == actions[1] and agent.action_space.contains(actions[0])


@pytest.mark.parametrize(
    ("algorithm", "env", "width"), [("dqn", "FrozenLake-v1", 16), ("ppo", "Blackjack-v1", 32 + 11 + 2)]
)
def test_discrete_and_tuple_observations_train_save_load_and_act(algorithm, env, width, tmp_path):
    agent = tiny(algorithm, env)
    agent.train(iterations=2)
    encoder = agent.effective_hyperparameters().encoder
    assert encoder is not None and (encoder.kind, encoder.input_shape) == ("mlp", [width])
    raw_space = agent.env_source.raw_observation_space
    raw_space.seed(0)
    raw = [raw_space.sample() for _ in range(8)]  # as the env returns them: ints, tuples
    actions = agent.act(raw, deterministic=True)
    assert len(actions) == 8
    agent.save(tmp_path / "agent")
    loaded = Agent.load(tmp_path / "agent")
    np.testing.assert_array_equal(loaded.act(raw, deterministic=True), actions)
    assert loaded.act(raw[0], deterministic=True) == actions[0]
    for name, value in agent.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[name], value, err_msg=name)


def test_normalized_pendulum_saves_its_statistics_and_acts_the_same_after_load(tmp_path):
    agent = tiny("sac", "Pendulum-v1", normalize={"observations": True, "rewards": True})
    agent.train(iterations=2)
    agent.save(tmp_path / "norm")
    saved = json.loads((tmp_path / "norm" / "native" / "polyrl_normalization.json").read_text())
    assert saved["observations"] is not None and saved["returns"] is not None
    loaded = Agent.load(tmp_path / "norm")
    rng = np.random.default_rng(0)
    batch = rng.uniform([-1, -1, -8], [1, 1, 8], size=(16, 3)).astype(np.float32)
    actions = agent.act(batch, deterministic=True)
    np.testing.assert_array_equal(loaded.act(batch, deterministic=True), actions)
    # The statistics are used: without them, the same policy acts on other inputs.
    raw_actions, _ = agent.native.predict(batch, deterministic=True)
    assert not np.array_equal(np.asarray(raw_actions), actions)


def test_device_is_resolved_reported_and_a_missing_gpu_is_refused(tmp_path):
    agent = tiny("ppo", IMAGE_ENV, device="cpu")
    assert agent.effective_hyperparameters().device == "cpu"
    assert str(agent.native.device) == "cpu"
    auto = tiny("ppo", "CartPole-v1")  # "auto": CUDA only when torch sees a GPU
    assert auto.effective_hyperparameters().device == ("cpu" if NO_GPU else "cuda")
    if NO_GPU:
        with pytest.raises(DeviceUnavailableError, match="'cuda' is not available"):
            tiny("ppo", IMAGE_ENV, device="cuda")
    agent.save(tmp_path / "cpu")
    loaded = Agent.load(tmp_path / "cpu", trust_env_factory=True, device="cpu")
    assert {p.device.type for p in loaded.native.policy.parameters()} == {"cpu"}
    if NO_GPU:  # the load honours the device asked for: no silent fall back to the CPU
        with pytest.raises(DeviceUnavailableError):
            Agent.load(tmp_path / "cpu", trust_env_factory=True, device="cuda:0")


def test_subprocess_envs_with_normalize_are_refused():
    with pytest.raises(UnsupportedOptionError, match="normalize.*subproc"):
        tiny(
            "ppo",
            "CartPole-v1",
            normalize={"observations": True},
            backend_options={"vec_env": "subproc"},
        )
