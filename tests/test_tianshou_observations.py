"""Tianshou on every observation kind: CNNs for images, encoded Discrete/Tuple, normalisation, device."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tianshou")

import polyrl
import torch
from polyrl import Agent
from polyrl_tianshou.encoders import CnnNet
from polyrl_tianshou.params import DEFAULTS


def image_env(action: str = "discrete") -> dict:
    return {
        "factory": "polyrl_conformance.envs:make_custom_env",
        "kwargs": {"action": action, "observation": "image"},
    }


OFF_POLICY_TINY = {"learning_starts": 20, "buffer_size": 200}
TINY = {
    "ppo": {"iteration_steps": 64, "batch_size": 32, "ppo": {"n_epochs": 1}},
    "dqn": {"iteration_steps": 48, "batch_size": 16, "dqn": OFF_POLICY_TINY},
    "sac": {"iteration_steps": 48, "batch_size": 16, "sac": OFF_POLICY_TINY},
}
#: (algorithm, action kind of the custom env) for the image cases
IMAGE_CASES = [("ppo", "discrete"), ("dqn", "discrete"), ("sac", "box")]


def tiny(algorithm: str, env, **fields) -> Agent:
    return Agent(backend="tianshou", algorithm=algorithm, env=env, seed=0, **{**TINY[algorithm], **fields})


def input_nets(agent: Agent) -> list:
    """Every net of the algorithm that takes observations: actor (or Q-network) and critics."""
    native = agent.native
    policy = native.policy
    nets = [policy.model] if hasattr(policy, "model") else [policy.actor.preprocess]
    nets += [getattr(native, name).preprocess for name in ("critic", "critic2") if hasattr(native, name)]
    return nets


def convs_of(net) -> list[tuple[int, int, int, int]]:
    return [
        (m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0])
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]


def reset_observations(agent: Agent, n: int = 4) -> np.ndarray:
    env = agent.env_source.make()
    return np.stack([env.reset(seed=seed)[0] for seed in range(n)])


def assert_same_actions_after_load(agent: Agent, path, observations) -> Agent:
    agent.save(path)
    again = Agent.load(path, trust_env_factory=True)
    np.testing.assert_array_equal(agent.act(observations), again.act(observations))
    return again


@pytest.mark.parametrize(("algorithm", "action"), IMAGE_CASES)
def test_image_env_trains_a_cnn_on_raw_pixels_and_loads_back(algorithm, action, tmp_path):
    agent = tiny(algorithm, image_env(action))
    effective = agent.effective_hyperparameters()
    encoder = effective.encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(16, 3, 1)]
    assert (encoder.input_shape, encoder.scale, encoder.conv_features) == (
        [12, 12, 3],
        (0.0, 255.0),
        16 * 10 * 10,
    )
    assert (effective.hidden, effective.activation, effective.device) == ([512], "relu", "cpu")
    nets = input_nets(agent)
    assert len(nets) == {"ppo": 2, "dqn": 1, "sac": 3}[algorithm]  # actor/Q-net and every critic
    for net in nets:
        assert isinstance(net, CnnNet) and convs_of(net) == [(3, 16, 3, 1)]
        assert next(m.out_features for m in net.model.modules() if isinstance(m, torch.nn.Linear)) == 512
    seen: list[torch.dtype] = []
    nets[0].encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    result = agent.train(iterations=2)
    steps = TINY[algorithm]["iteration_steps"]
    assert [r.env_steps for r in result.records] == [steps, 2 * steps]
    assert result.records[-1].losses and all(np.isfinite(v) for v in result.records[-1].losses.values())
    # the pixels reach the actor's encoder as the env's uint8, in collection and in updates
    assert seen and set(seen) == {torch.uint8}
    if algorithm != "ppo":
        assert agent._parts.driver.buffer.obs.dtype == np.uint8
    obs = reset_observations(agent)
    assert obs.dtype == np.uint8 and all(agent.action_space.contains(a) for a in agent.act(obs))
    again = assert_same_actions_after_load(agent, tmp_path / algorithm, obs)
    assert again.effective_hyperparameters().encoder == encoder
    assert again.train(iterations=1).records[0].env_steps == 3 * steps


EVERY_ALGORITHM = [
    ("ppo", "discrete"),
    ("ppo", "box"),  # its value net is a ContinuousCritic, which flattens the images
    ("a2c", "box"),
    ("dqn", "discrete"),
    ("sac", "box"),
    ("sac", "discrete"),
    ("td3", "box"),
    ("ddpg", "box"),
]


@pytest.mark.parametrize(("algorithm", "action"), EVERY_ALGORITHM)
def test_a_spec_conv_stack_is_what_every_net_builds(algorithm, action):
    network = {"conv": [[8, 4, 2], [16, 3, 1]], "hidden": [32], "activation": "tanh"}
    off_policy = {"learning_starts": 8, "buffer_size": 50}
    sizes: dict = {"iteration_steps": 16, "batch_size": 8}
    if algorithm not in ("ppo", "a2c"):
        sizes[algorithm] = off_policy
    agent = Agent(
        backend="tianshou", algorithm=algorithm, env=image_env(action), seed=0, network=network, **sizes
    )
    effective = agent.effective_hyperparameters()
    encoder = effective.encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(8, 4, 2), (16, 3, 1)]
    assert encoder.conv_features == 16 * 3 * 3  # 12 -> 5 -> 3 pixels a side
    assert (effective.hidden, effective.activation) == ([32], "tanh")
    nets = input_nets(agent)
    assert len(nets) == {"ppo": 2, "a2c": 2, "dqn": 1, "sac": 3, "td3": 3, "ddpg": 2}[algorithm]
    for net in nets:
        assert isinstance(net, CnnNet) and convs_of(net) == [(3, 8, 4, 2), (8, 16, 3, 1)]
        assert all(not isinstance(m, torch.nn.ReLU) for m in net.modules())
        assert sum(isinstance(m, torch.nn.Tanh) for m in net.encoder.modules()) == 2
    record = agent.train(iterations=1).records[0]
    assert record.env_steps == 16 and all(np.isfinite(v) for v in record.losses.values())
    obs = reset_observations(agent, 3)
    assert all(agent.action_space.contains(a) for a in agent.act(obs))


def test_vector_observations_keep_the_mlp_defaults():
    agent = tiny("ppo", "CartPole-v1")
    effective = agent.effective_hyperparameters()
    assert effective.encoder is not None and effective.encoder.kind == "mlp"
    assert effective.encoder.input_shape == [4] and effective.encoder.conv == []
    assert (effective.hidden, effective.activation) == (
        DEFAULTS["ppo"]["hidden"],
        DEFAULTS["ppo"]["activation"],
    )
    assert not any(isinstance(net, CnnNet) for net in input_nets(agent))


def test_minatar_bool_planes_train_with_ppo():
    agent = tiny("ppo", "MinAtar/Breakout-v1")
    encoder = agent.effective_hyperparameters().encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert (encoder.input_shape, encoder.scale, encoder.conv_features) == (
        [10, 10, 4],
        (0.0, 1.0),
        16 * 8 * 8,
    )
    seen: list[torch.dtype] = []
    input_nets(agent)[0].encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    record = agent.train(iterations=1).records[0]
    assert record.env_steps == 64 and np.isfinite(record.losses["loss"])
    assert set(seen) == {torch.bool}
    obs = reset_observations(agent, 2)
    assert obs.dtype == np.bool_
    assert all(agent.action_space.contains(a) for a in agent.act(obs))


def test_atari_preset_gets_the_nature_cnn():
    agent = Agent(backend="tianshou", algorithm="ppo", env="ALE/Pong-v5", wrappers=["atari"], seed=0)
    encoder = agent.effective_hyperparameters().encoder
    assert encoder is not None and encoder.kind == "cnn"
    assert [(c.channels, c.kernel, c.stride) for c in encoder.conv] == [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
    assert (encoder.input_shape, encoder.conv_features) == ([4, 84, 84], 64 * 7 * 7)
    assert convs_of(input_nets(agent)[0]) == [(4, 32, 8, 4), (32, 64, 4, 2), (64, 64, 3, 1)]
    obs = reset_observations(agent, 2)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert all(agent.action_space.contains(a) for a in agent.act(obs))
    agent.close()


@pytest.mark.parametrize(
    ("algorithm", "env", "width", "raw"),
    [
        ("dqn", "FrozenLake-v1", 16, [0, 5, 14]),
        ("ppo", "Blackjack-v1", 32 + 11 + 2, [(14, 5, 0), (20, 10, 1)]),
    ],
)
def test_discrete_and_tuple_observations_train_save_load_and_act(algorithm, env, width, raw, tmp_path):
    agent = tiny(algorithm, env, preset="none")  # TINY's iteration size, not the dqn-vector fallback's
    encoder = agent.effective_hyperparameters().encoder
    assert encoder is not None and (encoder.kind, encoder.input_shape) == ("mlp", [width])
    result = agent.train(iterations=2)
    assert result.records[-1].env_steps == 2 * TINY[algorithm]["iteration_steps"]
    agent.save(tmp_path / env)
    again = Agent.load(tmp_path / env)
    for observation in raw:  # as the env returns them: polyrl one-hot encodes them
        action = agent.act(observation)
        assert agent.action_space.contains(action) and again.act(observation) == action
    assert again.effective_hyperparameters().encoder == encoder


def test_normalized_pendulum_saves_and_loads_the_same_policy(tmp_path):
    agent = tiny("ppo", "Pendulum-v1", normalize={"observations": True, "rewards": True})
    result = agent.train(iterations=2)
    assert all(np.isfinite(v) for v in result.records[-1].losses.values())
    rng = np.random.default_rng(0)
    obs = np.column_stack(
        [np.cos(angle := rng.uniform(-np.pi, np.pi, 32)), np.sin(angle), rng.uniform(-8, 8, 32)]
    ).astype(np.float32)
    again = assert_same_actions_after_load(agent, tmp_path / "normalized", obs)
    assert again.train(iterations=1).records[0].env_steps == 3 * TINY["ppo"]["iteration_steps"]


def test_device_is_the_spec_field(tmp_path):
    agent = tiny("dqn", image_env(), device="cpu")
    assert agent.effective_hyperparameters().device == "cpu"
    assert {p.device.type for p in agent.native.parameters()} == {"cpu"}
    agent.save(tmp_path / "cpu")
    loaded = Agent.load(tmp_path / "cpu", trust_env_factory=True, device="cpu")
    assert loaded.effective_hyperparameters().device == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(polyrl.errors.DeviceUnavailableError, match="'cuda' is not available"):
            tiny("ppo", "CartPole-v1", device="cuda")
        with pytest.raises(polyrl.errors.DeviceUnavailableError, match="'cuda' is not available"):
            Agent.load(tmp_path / "cpu", trust_env_factory=True, device="cuda")
    with pytest.raises(
        polyrl.errors.UnsupportedOptionError, match="device is the spec's own field.*device='cpu'"
    ):
        tiny("ppo", "CartPole-v1", backend_options={"device": "cpu"})


def test_subprocess_envs_with_normalize_are_refused():
    with pytest.raises(polyrl.errors.UnsupportedOptionError, match="normalize.*'subproc'"):
        tiny("ppo", "Pendulum-v1", normalize={"observations": True}, backend_options={"vec_env": "subproc"})
