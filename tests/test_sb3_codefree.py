"""SB3 checkpoints load without running code (issue 16): nothing polyrl reads is a pickle, a
hostile SB3 zip beside them is never opened, the state survives exactly, damage is named."""

from __future__ import annotations

import base64
import io
import json
import pickle
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import cloudpickle
import torch
from polyrl import Agent
from polyrl.checkpoint import describe_files
from polyrl.errors import CorruptCheckpointError
from polyrl_sb3.legacy import PickledCheckpointError, convert_pickled_checkpoint
from stable_baselines3 import PPO

TINY = {
    "ppo": {"env": "CartPole-v1", "iteration_steps": 128, "batch_size": 64, "ppo": {"n_epochs": 2}},
    # preset none: the DQN presets (dqn-cartpole, the dqn-vector fallback) collect 256 steps per update
    "dqn": {"env": "CartPole-v1", "iteration_steps": 100, "batch_size": 32, "preset": "none",
            "dqn": {"learning_starts": 50, "buffer_size": 1000}},
    "sac": {"env": "Pendulum-v1", "iteration_steps": 100, "batch_size": 32,
            "sac": {"learning_starts": 50, "buffer_size": 1000}},
}  # fmt: skip
POLYRL_FILES = ("polyrl_sb3.json", "polyrl_sb3_tensors.npz", "polyrl_random_state.npz")

# Unpickling a payload that names a global (every class, every function) raises this audit event,
# in the C unpickler too: it catches what patching module attributes could miss.
_AUDIT: dict[str, list] = {"events": [], "on": []}


def _audit(event: str, args: tuple) -> None:
    if _AUDIT["on"] and event == "pickle.find_class":
        _AUDIT["events"].append(args)


sys.addaudithook(_audit)


def trained(algorithm: str, iterations: int = 2, **fields) -> Agent:
    agent = Agent(backend="sb3", algorithm=algorithm, seed=0, **{**TINY[algorithm], **fields})
    agent.train(iterations=iterations)
    return agent


def rehash(checkpoint: Path) -> None:
    """Record the native files' current sizes and hashes, as someone rewriting files would."""
    manifest = checkpoint / "polyrl.json"
    document = json.loads(manifest.read_text())
    files = describe_files(checkpoint / "native")
    document["files"] = {name: entry.model_dump() for name, entry in files.items()}
    manifest.write_text(json.dumps(document))


@contextmanager
def no_unpickling(monkeypatch: pytest.MonkeyPatch):
    """Every way to unpickle raises (and any find_class is recorded) inside the block."""

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    class Refusing(pickle.Unpickler):
        def __init__(self, *args, **kwargs):
            refuse()

    with monkeypatch.context() as patch:
        for name in ("load", "loads"):
            patch.setattr(pickle, name, refuse)
            patch.setattr(cloudpickle, name, refuse)
        patch.setattr(pickle, "Unpickler", Refusing)
        patch.setattr(torch, "load", refuse)
        patch.setattr(torch.serialization, "load", refuse)
        _AUDIT["events"].clear()
        _AUDIT["on"].append(True)
        try:
            yield
        finally:
            _AUDIT["on"].clear()
    assert _AUDIT["events"] == [], f"unpickled globals: {_AUDIT['events'][:3]}"


def test_the_guard_sees_unpickling_that_bypasses_the_patched_functions(monkeypatch):
    import _pickle

    with pytest.raises(AssertionError, match="unpickled globals"), no_unpickling(monkeypatch):
        _pickle.loads(pickle.dumps(Path("x")))


def sb3_state(agent: Agent) -> dict[str, np.ndarray]:
    """Every tensor of the policy and the optimizers, and the replay buffer's arrays."""
    model = agent.native
    found = {}
    for name in model._get_torch_save_params()[0]:
        target = model
        for part in name.split("."):
            target = getattr(target, part)
        state = target.state_dict()
        if isinstance(target, torch.optim.Optimizer):
            state = {f"{i}/{k}": v for i, entries in state["state"].items() for k, v in entries.items()}
        found.update({f"{name}/{k}": np.asarray(v) for k, v in state.items()})
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None:
        for field in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
            value = getattr(buffer, field)
            items = value.items() if isinstance(value, dict) else [("", value)]
            found.update({f"replay/{field}/{k}": np.asarray(v) for k, v in items})
        found["replay/pos"], found["replay/full"] = np.asarray(buffer.pos), np.asarray(buffer.full)
    return found


@pytest.mark.parametrize("algorithm", ["ppo", "dqn"])
def test_checkpoint_holds_no_pickle_and_loads_without_unpickling(algorithm, tmp_path, monkeypatch):
    agent = trained(algorithm)
    agent.save(tmp_path / "ckpt")
    native = tmp_path / "ckpt" / "native"
    read = [*POLYRL_FILES, *(["polyrl_sb3_replay.npz"] if algorithm == "dqn" else [])]
    assert sorted(p.name for p in native.iterdir()) == sorted([*read, "sb3_model.zip"])
    assert not (native / "replay_buffer.pkl").exists() and not (native / "model.zip").exists()
    for name in read:
        data = (native / name).read_bytes()
        assert not data.startswith(b"\x80"), f"{name} is a pickle"
        if name.endswith(".npz"):
            with zipfile.ZipFile(native / name) as archive:
                assert all(member.endswith(".npy") for member in archive.namelist())
            with np.load(native / name, allow_pickle=False) as arrays:
                assert all(arrays[key].dtype != object for key in arrays.files)
        else:
            json.loads(data)
    if algorithm == "dqn":
        assert agent.replay_size == 200
    with no_unpickling(monkeypatch):
        loaded = Agent.load(tmp_path / "ckpt")
        assert loaded.env_steps == agent.env_steps and loaded.replay_size == agent.replay_size
        loaded.close()
    # Control: the same guard does stop SB3's own loader on its zip, which polyrl never reads.
    with pytest.raises(AssertionError, match="unpickled"), no_unpickling(monkeypatch):
        type(agent.native).load(native / "sb3_model.zip")


def _plant_payload(zip_path: Path, marker: Path) -> None:
    """Add to the SB3 zip's data JSON a ":serialized:" entry that creates `marker` when unpickled."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with zipfile.ZipFile(zip_path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["planted"] = {":serialized:": base64.b64encode(pickle.dumps(Payload())).decode()}
    members["data"] = json.dumps(data).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    zip_path.write_bytes(buffer.getvalue())


def test_a_hostile_sb3_zip_beside_the_state_runs_nothing(tmp_path):
    agent = trained("ppo", iterations=1)
    checkpoint = tmp_path / "ckpt"
    agent.save(checkpoint)
    marker = tmp_path / "pwned"
    _plant_payload(checkpoint / "native" / "sb3_model.zip", marker)
    rehash(checkpoint)  # the manifest vouches for the planted file: only the format protects
    loaded = Agent.load(checkpoint)
    assert not marker.exists()
    obs = np.zeros((3, 4), np.float32)
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))
    # Control: the payload is live, SB3's own loader runs it.
    PPO.load(checkpoint / "native" / "sb3_model.zip")
    assert marker.exists()


@pytest.mark.parametrize("algorithm", ["ppo", "dqn", "sac"])
def test_load_restores_parameters_optimizers_replay_and_actions_exactly(algorithm, tmp_path):
    agent = trained(algorithm)
    agent.save(tmp_path / "ckpt")
    loaded = Agent.load(tmp_path / "ckpt")
    before, after = sb3_state(agent), sb3_state(loaded)
    assert sorted(before) == sorted(after)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    for name, value in agent.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[name], value, err_msg=name)
    assert loaded.replay_size == agent.replay_size
    assert loaded.learning_rate == agent.learning_rate and loaded.env_steps == agent.env_steps
    for counter in ("num_timesteps", "_n_updates", "_episode_num", "_current_progress_remaining"):
        assert getattr(loaded.native, counter) == getattr(agent.native, counter), counter
    if algorithm == "sac":
        assert loaded.native.log_ent_coef.item() == agent.native.log_ent_coef.item()
    obs = np.stack([agent.observation_space.sample() for _ in range(16)])
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))


def test_dict_observation_replay_buffer_resumes_exactly(tmp_path):
    """Dict observations (polyrl encodes them into one vector, so SB3 keeps a plain ReplayBuffer),
    on the suite's fixed-start env whose episodes end at iteration ends."""
    env = {
        "factory": "polyrl_conformance.envs:make_custom_env",
        "kwargs": {"observation": "dict", "fixed_horizon": 100},
    }
    saver, twin = trained("dqn", env=env), trained("dqn", env=env)
    saver.save(tmp_path / "ckpt")
    loaded = Agent.load(tmp_path / "ckpt", trust_env_factory=True)
    observations = loaded.native.replay_buffer.observations
    assert isinstance(observations, np.ndarray)
    assert observations.shape[-1:] == loaded.observation_space.shape
    assert loaded.replay_size == saver.replay_size == 200
    resumed, uninterrupted = loaded.train(iterations=1).records[0], twin.train(iterations=1).records[0]
    assert resumed.losses == uninterrupted.losses
    for name, value in twin.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[name], value, err_msg=name)


def test_a_truncated_weights_file_is_named(tmp_path):
    trained("ppo", iterations=1).save(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "native" / "polyrl_sb3_tensors.npz"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError, match="polyrl_sb3_tensors.npz"):
        Agent.load(tmp_path / "ckpt")  # the manifest's hash
    rehash(tmp_path / "ckpt")
    with pytest.raises(CorruptCheckpointError, match=r"native/polyrl_sb3_tensors.npz: .*truncated"):
        Agent.load(tmp_path / "ckpt")  # the driver's own reading


def test_a_tensor_of_another_shape_says_the_spec_changed(tmp_path):
    trained("dqn", iterations=1).save(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "native" / "polyrl_sb3_tensors.npz"
    with np.load(weights, allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files}
    name = next(n for n in arrays if n.endswith("weight"))
    arrays[name] = np.zeros((3, 3), arrays[name].dtype)
    np.savez(weights, **arrays)
    rehash(tmp_path / "ckpt")
    with pytest.raises(CorruptCheckpointError, match=rf"{name.split('/')[-1]}.*\(3, 3\).*spec changed"):
        Agent.load(tmp_path / "ckpt")


def _as_earlier_format(agent: Agent, checkpoint: Path) -> None:
    """Rewrite a checkpoint's native files as the earlier pickle-based sb3 format wrote them."""
    native = checkpoint / "native"
    for name in ("polyrl_sb3_tensors.npz", "polyrl_sb3_replay.npz", "sb3_model.zip"):
        (native / name).unlink(missing_ok=True)
    agent.native.save(native / "model.zip")
    agent.native.save_replay_buffer(native / "replay_buffer.pkl")
    rng = agent.native.action_space.np_random.bit_generator.state
    steps = agent.effective_hyperparameters().iteration_steps
    (native / "polyrl_sb3.json").write_text(json.dumps({"iteration_steps": steps, "action_space_rng": rng}))
    rehash(checkpoint)


def test_an_earlier_pickled_checkpoint_is_refused_then_converts_on_request(tmp_path, monkeypatch):
    agent = trained("dqn")
    old, new = tmp_path / "old", tmp_path / "new"
    agent.save(old)
    _as_earlier_format(agent, old)
    with no_unpickling(monkeypatch), pytest.raises(PickledCheckpointError) as refused:
        Agent.load(old)
    message = str(refused.value)
    assert isinstance(refused.value, CorruptCheckpointError)
    assert "model.zip" in message and "pickle" in message and "python -m polyrl_sb3.legacy" in message
    convert_pickled_checkpoint(old, new)  # the caller's explicit trust: this unpickles
    with no_unpickling(monkeypatch):
        converted = Agent.load(new)
    assert converted.replay_size == agent.replay_size == 200
    assert converted.env_steps == agent.env_steps
    for name, value in agent.parameters().items():
        np.testing.assert_array_equal(converted.parameters()[name], value, err_msg=name)
    obs = np.zeros((4, 4), np.float32)
    np.testing.assert_array_equal(converted.act(obs), agent.act(obs))
