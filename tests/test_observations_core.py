"""The core's observation handling, on the fake backend: wrappers, encoding, images, normalisation, device."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import polyrl
import pytest
from gymnasium import spaces
from polyrl.envs import EnvSource
from polyrl.errors import (
    BackendNotInstalledError,
    EnvironmentCreationError,
    UnsupportedOptionError,
    UnsupportedSpaceError,
)
from polyrl.observations.encoding import encode
from polyrl.observations.images import image_layout
from polyrl.observations.network import resolve_network
from polyrl.observations.normalize import NORMALIZATION_FILE, RunningMeanStd
from polyrl.spec import AgentSpec, NetworkSpec
from pydantic import ValidationError

CUSTOM = "polyrl_conformance.envs:make_custom_env"


def custom(observation: str, action: str = "discrete") -> dict[str, Any]:
    return {"factory": CUSTOM, "kwargs": {"action": action, "observation": observation}}


class MiniGridLike(gym.Env[Any, int]):
    """A Dict observation with an image, a Discrete direction and a Text mission, as MiniGrid's."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 10, (7, 7, 3), np.uint8),
                "direction": spaces.Discrete(4),
                "mission": spaces.Text(20),
            }
        )
        self.action_space = spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


# -- spec -------------------------------------------------------------------------------------
def test_wrappers_accept_a_kind_alone_a_single_wrapper_and_documents() -> None:
    spec = AgentSpec(wrappers=["grayscale", {"kind": "frame_stack", "n": 3}])
    assert [w.kind for w in spec.wrappers] == ["grayscale", "frame_stack"]
    assert spec.wrappers[1].n == 3  # type: ignore[union-attr]
    assert [w.kind for w in AgentSpec(wrappers="atari").wrappers] == ["atari"]
    assert AgentSpec.model_validate_json(spec.model_dump_json()).wrappers == spec.wrappers


def test_an_unknown_wrapper_kind_and_a_bad_setting_are_rejected() -> None:
    with pytest.raises(ValidationError, match="frame_stack"):
        AgentSpec(wrappers=["framestack"])
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        AgentSpec(wrappers=[{"kind": "frame_stack", "n": 1}])
    with pytest.raises(ValidationError):
        AgentSpec(wrappers=[{"kind": "frame_stack", "n": True}])


def test_conv_layers_are_written_as_triples_or_documents() -> None:
    network = NetworkSpec(conv=[[32, 8, 4], {"channels": 64, "kernel": 4, "stride": 2}, [16, 3]])
    assert [(c.channels, c.kernel, c.stride) for c in network.conv or []] == [
        (32, 8, 4),
        (64, 4, 2),
        (16, 3, 1),
    ]
    with pytest.raises(ValidationError, match="channels, kernel"):
        NetworkSpec(conv=[[1, 2, 3, 4]])


def test_device_is_checked_and_lowercased() -> None:
    assert AgentSpec().device == "auto"
    assert AgentSpec(device="CUDA:1").device == "cuda:1"
    with pytest.raises(ValidationError, match="device"):
        AgentSpec(device="tpu")


def test_normalize_needs_something_to_do() -> None:
    assert AgentSpec(normalize={}).normalize.observations is True  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="neither"):
        AgentSpec(normalize={"observations": False, "rewards": False})


# -- encoding ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "size", "first"),
    [("FrozenLake-v1", 16, [1.0, 0.0, 0.0]), ("Taxi-v3", 500, None), ("Blackjack-v1", 32 + 11 + 2, None)],
)
def test_discrete_and_tuple_observations_become_one_float_vector(env_id: str, size: int, first: Any) -> None:
    source = EnvSource(env_id)
    assert source.observation_space == spaces.Box(0.0, 1.0, (size,), np.float32)
    env = source.make()
    observation, _ = env.reset(seed=0)
    assert observation.dtype == np.float32 and observation.shape == (size,)
    assert observation.sum() == len(
        getattr(source.raw_observation_space, "spaces", [None])
    )  # one-hot per part
    if first is not None:
        assert observation[:3].tolist() == first  # FrozenLake starts in cell 0
    env.close()


def test_a_text_subspace_is_refused_naming_the_keys_to_keep() -> None:
    with pytest.raises(UnsupportedSpaceError, match=r"mission \(Text\)") as caught:
        EnvSource(polyrl.spec.EnvFactorySpec.from_callable(MiniGridLike))
    # The advice is JSON, so it can be pasted into --wrappers as it is.
    assert '{"kind": "filter_keys", "keys": ["direction", "image"]}' in str(caught.value)


def test_a_dict_holding_an_image_is_refused_then_filter_keys_gives_the_image() -> None:
    factory = polyrl.spec.EnvFactorySpec.from_callable(MiniGridLike)
    with pytest.raises(UnsupportedSpaceError, match=r"holding image\(s\) at \['image'\]"):
        EnvSource(
            factory,
            wrappers=AgentSpec(wrappers=[{"kind": "filter_keys", "keys": ["image", "direction"]}]).wrappers,
        )
    source = EnvSource(
        factory, wrappers=AgentSpec(wrappers=[{"kind": "filter_keys", "keys": ["image"]}]).wrappers
    )
    assert source.observation_space == spaces.Box(0, 10, (7, 7, 3), np.uint8)  # the image itself: a CNN
    flat = EnvSource(
        factory,
        wrappers=AgentSpec(
            wrappers=[{"kind": "filter_keys", "keys": ["image", "direction"]}, "flatten"]
        ).wrappers,
    )
    assert flat.observation_space.shape == (7 * 7 * 3 + 4,)


def test_filter_keys_naming_a_missing_key_lists_the_keys() -> None:
    factory = polyrl.spec.EnvFactorySpec.from_callable(MiniGridLike)
    with pytest.raises(UnsupportedSpaceError, match=r"\['mision'\].*\['direction', 'image', 'mission'\]"):
        EnvSource(
            factory, wrappers=AgentSpec(wrappers=[{"kind": "filter_keys", "keys": ["mision"]}]).wrappers
        )


# -- images -----------------------------------------------------------------------------------
def test_image_layouts_follow_the_smallest_outer_axis() -> None:
    hwc = image_layout(spaces.Box(0, 255, (84, 84, 4), np.uint8))
    chw = image_layout(spaces.Box(0, 255, (4, 84, 84), np.uint8))
    assert hwc is not None and hwc.channels_last and hwc.chw == (4, 84, 84)
    assert chw is not None and not chw.channels_last and chw.chw == (4, 84, 84)
    assert image_layout(spaces.Box(-np.inf, np.inf, (3, 4, 5))) is None
    assert image_layout(spaces.Box(0, 1, (7,))) is None


def test_default_conv_is_nature_for_large_images_and_small_for_minatar() -> None:
    large = resolve_network(None, spaces.Box(0, 255, (210, 160, 3), np.uint8))
    assert [(c.channels, c.kernel, c.stride) for c in large.encoder.conv] == [
        (32, 8, 4),
        (64, 4, 2),
        (64, 3, 1),
    ]
    assert (
        large.encoder.conv_features == 64 * 22 * 16 and large.hidden == [512] and large.activation == "relu"
    )
    small = resolve_network(None, spaces.Box(0, 1, (10, 10, 4), bool))
    assert [(c.channels, c.kernel, c.stride) for c in small.encoder.conv] == [(16, 3, 1)]
    assert small.encoder.conv_features == 16 * 8 * 8 and small.encoder.scale == (0.0, 1.0)
    mlp = resolve_network(None, spaces.Box(-1, 1, (4,)))
    assert mlp.encoder.kind == "mlp" and mlp.hidden is None


def test_conv_layers_that_leave_no_pixel_are_refused_with_the_resize_advice() -> None:
    with pytest.raises(UnsupportedSpaceError, match="resize"):
        resolve_network(NetworkSpec(conv=[[32, 8, 4], [64, 4, 2]]), spaces.Box(0, 255, (12, 12, 3), np.uint8))
    with pytest.raises(UnsupportedSpaceError, match="resize"):
        resolve_network(None, spaces.Box(0, 255, (2, 2, 3), np.uint8))
    with pytest.raises(UnsupportedSpaceError, match="not an image"):
        resolve_network(NetworkSpec(conv=[[8, 3, 1]]), spaces.Box(-1, 1, (4,)))


def test_an_agent_on_a_tiny_image_fails_at_creation(fake_backend: str) -> None:
    class Tiny(MiniGridLike):
        def __init__(self) -> None:
            self.observation_space = spaces.Box(0, 255, (2, 2, 3), np.uint8)
            self.action_space = spaces.Discrete(2)

    with pytest.raises(UnsupportedSpaceError, match="image"):
        polyrl.Agent(backend=fake_backend, algorithm="linear", env=Tiny)


def test_frame_stack_concatenates_channels_of_images_and_ends_of_vectors() -> None:
    image = EnvSource(
        "MinAtar/Breakout-v1", wrappers=AgentSpec(wrappers=[{"kind": "frame_stack", "n": 3}]).wrappers
    )
    assert image.observation_space.shape == (10, 10, 12)
    vector = EnvSource("CartPole-v1", wrappers=AgentSpec(wrappers=[{"kind": "frame_stack", "n": 2}]).wrappers)
    env = vector.make()
    first, _ = env.reset(seed=0)
    assert first.shape == (8,) and np.array_equal(first[:4], first[4:])  # the reset frame, twice
    second, *_ = env.step(0)
    assert np.array_equal(second[:4], first[4:])  # the oldest frame comes first
    env.close()


def test_the_atari_preset_gives_four_stacked_84x84_frames() -> None:
    source = EnvSource("ALE/Pong-v5", wrappers=AgentSpec(wrappers=["atari"]).wrappers)
    assert source.observation_space.shape == (4, 84, 84)
    assert resolve_network(None, source.observation_space).encoder.conv_features == 64 * 7 * 7
    grayscale = EnvSource(
        "ALE/Pong-v5",
        wrappers=AgentSpec(wrappers=["grayscale", {"kind": "resize", "shape": [42, 42]}]).wrappers,
    )
    assert grayscale.observation_space.shape == (42, 42, 1)


def test_grayscale_and_resize_refuse_non_images() -> None:
    with pytest.raises(UnsupportedSpaceError, match="HxWxC"):
        EnvSource("CartPole-v1", wrappers=AgentSpec(wrappers=["grayscale"]).wrappers)
    with pytest.raises(UnsupportedSpaceError, match="one_hot"):
        EnvSource("CartPole-v1", wrappers=AgentSpec(wrappers=["one_hot"]).wrappers)


def test_a_missing_namespace_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from polyrl import envs

    monkeypatch.setitem(envs._NAMESPACE_PACKAGES, "ALE", ("no_such_ale_module_polyrl", "ale-py"))
    with pytest.raises(EnvironmentCreationError, match="pip install ale-py"):
        EnvSource("ALE/Pong-v5")


def test_the_resize_wrapper_names_opencv_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(BackendNotInstalledError, match="opencv"):
        EnvSource("ALE/Pong-v5", wrappers=AgentSpec(wrappers=[{"kind": "resize"}]).wrappers)


# -- agents on the fake backend ---------------------------------------------------------------
def test_act_takes_raw_or_encoded_discrete_observations(fake_backend: str) -> None:
    agent = polyrl.Agent(backend=fake_backend, algorithm="linear", env="FrozenLake-v1", seed=0)
    raw = agent.env_source.raw_observation_space
    for cell in (0, 5, 15):
        assert agent.act(cell) == agent.act(encode(raw, cell))
    assert agent.act([0, 5, 15]).tolist() == [agent.act(c) for c in (0, 5, 15)]


def test_space_errors_name_the_backends_that_take_the_space(fake_backend: str) -> None:
    with pytest.raises(UnsupportedSpaceError, match=r"take box actions: \[.*'fake/linear'") as caught:
        polyrl.Agent(backend=fake_backend, algorithm="discrete_only", env="Pendulum-v1")
    assert "'fake/discrete_only'" not in str(caught.value)
    with pytest.raises(UnsupportedSpaceError, match=r"image observations.*flatten"):
        polyrl.Agent(backend=fake_backend, algorithm="linear", env=custom("image"))
    agent = polyrl.Agent(backend=fake_backend, algorithm="linear", env=custom("image"), wrappers=["flatten"])
    assert agent.observation_space.shape == (12 * 12 * 3,)


def test_normalisation_updates_in_training_and_is_frozen_in_act_and_evaluate(fake_backend: str) -> None:
    agent = polyrl.Agent(backend=fake_backend, algorithm="linear", env="Pendulum-v1", seed=0, normalize={})
    normalizer = agent.env_source.normalizer
    assert normalizer is not None and normalizer.observations is not None
    agent.train(iterations=2)
    count = normalizer.observations.count
    assert count > 200  # every training step was counted
    mean = normalizer.observations.mean.copy()
    agent.evaluate(episodes=1)
    agent.act(np.zeros(3, np.float32))
    assert normalizer.observations.count == count and np.array_equal(normalizer.observations.mean, mean)


def test_reward_normalisation_reports_raw_returns(fake_backend: str) -> None:
    agent = polyrl.Agent(
        backend=fake_backend,
        algorithm="linear",
        env="Pendulum-v1",
        seed=0,
        iteration_steps=400,
        normalize={"observations": False, "rewards": True},
    )
    result = agent.train(iterations=1)
    returns = [r.return_mean for r in result.records if r.return_mean is not None]
    assert returns and all(r < -100 for r in returns)  # Pendulum's raw returns, not ~N(0, 1) ones


def test_normalisation_statistics_travel_with_the_checkpoint(fake_backend: str, tmp_path: Any) -> None:
    agent = polyrl.Agent(
        backend=fake_backend, algorithm="linear", env="Pendulum-v1", seed=0, normalize={"rewards": True}
    )
    agent.train(iterations=2)
    agent.save(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "native" / NORMALIZATION_FILE).read_text())
    assert saved["observations"]["count"] == agent.env_source.normalizer.observations.count  # type: ignore[union-attr]
    loaded = polyrl.Agent.load(tmp_path / "ckpt")
    observations = np.random.default_rng(0).uniform(-1, 1, size=(16, 3)).astype(np.float32)
    assert np.array_equal(loaded.act(observations), agent.act(observations))
    (tmp_path / "ckpt" / "native" / NORMALIZATION_FILE).unlink()
    with pytest.raises(polyrl.errors.CheckpointError):
        polyrl.Agent.load(tmp_path / "ckpt")


def test_normalize_refuses_images_and_subprocess_envs(fake_backend: str) -> None:
    with pytest.raises(UnsupportedSpaceError, match="images"):
        polyrl.Agent(backend=fake_backend, algorithm="linear", env=custom("image"), wrappers=[], normalize={})
    from polyrl.driverkit import vec_env_option

    with pytest.raises(UnsupportedOptionError, match="subproc"):
        vec_env_option(AgentSpec(normalize={}, backend_options={"vec_env": "subproc"}))


def test_running_mean_std_matches_numpy() -> None:
    data = np.random.default_rng(1).normal(3.0, 2.0, size=(1000, 2))
    stats = RunningMeanStd((2,))
    for chunk in np.array_split(data, 7):
        stats.update(chunk)
    assert np.allclose(stats.mean, data.mean(axis=0), atol=1e-3)
    assert np.allclose(stats.var, data.var(axis=0), rtol=1e-3)


def test_a_missing_gpu_is_a_typed_error_naming_the_device() -> None:
    pytest.importorskip("torch")
    import torch
    from polyrl.driverkit import resolve_device
    from polyrl.errors import DeviceUnavailableError

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceUnavailableError, match="'cuda:7'"):
        resolve_device("cuda:7")


def test_plugins_json_lists_the_observation_kinds_per_algorithm(fake_backend: str) -> None:
    from polyrl.cli.app import app
    from typer.testing import CliRunner

    rows = {row["name"]: row for row in json.loads(CliRunner().invoke(app, ["plugins", "--json"]).output)}
    assert rows[fake_backend]["observations"] == {"discrete_only": ["box"], "linear": ["box"]}


def test_cli_flags_set_wrappers_normalize_and_conv() -> None:
    from polyrl.cli.app import build_documents

    flags = ["--wrappers", "atari", "--normalize.rewards", "true", "--network.conv", "[[16, 3, 1]]"]
    spec, _ = build_documents(None, None, {}, [*flags, "--device", "cpu", "--iterations", "1"])
    assert [w.kind for w in spec.wrappers] == ["atari"]
    assert spec.normalize is not None and spec.normalize.rewards and spec.normalize.observations
    assert spec.network is not None and spec.network.conv is not None and spec.network.conv[0].channels == 16
    assert spec.device == "cpu"


def test_load_onto_another_device_changes_the_spec_and_the_cli_checks_the_name(
    fake_backend: str, tmp_path: Any
) -> None:
    from polyrl.cli.app import app
    from typer.testing import CliRunner

    agent = polyrl.Agent(backend=fake_backend, algorithm="linear", env="CartPole-v1", device="auto")
    agent.save(tmp_path / "ckpt")
    assert polyrl.Agent.load(tmp_path / "ckpt", device="CPU").spec.device == "cpu"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "ckpt"), "--device", "tpu", "--json"])
    assert result.exit_code == 2 and "device" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "ckpt"), "--device", "cpu", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["episodes"]


def test_grayscale_then_resize_then_frame_stack_keep_the_shapes_they_declare() -> None:
    wrappers = AgentSpec(wrappers=["grayscale", {"kind": "resize", "shape": [6, 5]}, "frame_stack"]).wrappers
    source = EnvSource(
        polyrl.spec.EnvFactorySpec(factory=CUSTOM, kwargs={"observation": "image"}), wrappers=wrappers
    )
    assert source.observation_space.shape == (6, 5, 4) and source.observation_space.dtype == np.uint8
    env = source.make()
    observation, _ = env.reset(seed=0)
    assert observation.shape == (6, 5, 4) and source.observation_space.contains(observation)
    observation, *_ = env.step(0)
    assert observation.shape == (6, 5, 4)
    env.close()


def test_pixel_wrappers_refuse_non_pixel_images_with_a_reason() -> None:
    with pytest.raises(UnsupportedSpaceError, match="uint8 pixel frames.*need no resizing"):
        EnvSource("MinAtar/Breakout-v1", wrappers=AgentSpec(wrappers=["resize"]).wrappers)
    with pytest.raises(UnsupportedSpaceError, match="not RGB pixels"):
        EnvSource("MinAtar/Breakout-v1", wrappers=AgentSpec(wrappers=["grayscale"]).wrappers)
    with pytest.raises(UnsupportedSpaceError, match="for ALE envs"):
        EnvSource("MinAtar/Breakout-v1", wrappers=AgentSpec(wrappers=["atari"]).wrappers)


def test_a_bad_device_name_says_which_names_work() -> None:
    with pytest.raises(ValidationError, match='device must be "auto", "cpu", "cuda" or "cuda:N"'):
        AgentSpec(device="gpu")


def test_train_cli_cuts_its_evaluation_at_eval_max_steps(fake_backend: str, tmp_path: Any) -> None:
    from polyrl.cli.app import app
    from typer.testing import CliRunner

    args = [
        "train",
        "--backend",
        fake_backend,
        "--algo",
        "linear",
        "--env",
        "CartPole-v1",
        "--iterations",
        "1",
    ]
    result = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "x"), "--eval-episodes", "2", "--eval-max-steps", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [e["length"] for e in json.loads(result.output)["evaluation"]["episodes"]] == [3, 3]
