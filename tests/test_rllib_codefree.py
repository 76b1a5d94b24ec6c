"""RLlib checkpoints load without running code (issue 16): polyrl restores the Algorithm from
NumPy/JSON files it wrote itself and never reads RLlib's pickled checkpoint exported beside them.

One tiny PPO agent is trained and saved once per module, and loaded once with every unpickling
entry point guarded; the other tests copy the checkpoint and tamper with the copy.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from collections import OrderedDict, defaultdict
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import cloudpickle
import ray.cloudpickle
import torch
from polyrl import Agent
from polyrl.checkpoint import describe_files
from polyrl.errors import CheckpointError, CorruptCheckpointError
from polyrl_rllib import BACKEND, replay
from polyrl_rllib.driver import CHECKPOINT_DIR, RllibDriver
from polyrl_rllib.state import ALGORITHM_STATE

#: Every way to unpickle that RLlib's checkpoint reading (ray.cloudpickle) or a library could use.
UNPICKLERS = [
    (pickle, "load"),
    (pickle, "loads"),
    (pickle, "Unpickler"),
    (cloudpickle, "load"),
    (cloudpickle, "loads"),
    (ray.cloudpickle, "load"),
    (ray.cloudpickle, "loads"),
]
#: Ray's env registry unpickles the env creator the driver registered in this process (not read
#: from the checkpoint) when the Algorithm is built: the one caller allowed, and only then.
REGISTRY = os.path.join("ray", "tune", "registry.py")


def observations(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.2, 0.2, size=(n, 4)).astype(np.float32)


def rehash(checkpoint: Path) -> None:
    """Make the manifest vouch for the files as they are now (what a tamperer would do)."""
    path = checkpoint / "polyrl.json"
    document = json.loads(path.read_text())
    files = describe_files(checkpoint / "native")
    document["files"] = {name: entry.model_dump() for name, entry in files.items()}
    path.write_text(json.dumps(document))


def assert_same_tree(ours: Any, theirs: Any, path: str = "") -> None:
    """Equal leaf for leaf, and of the same types (a float stays a float, a tuple a tuple)."""
    assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(ours, dict):
        assert list(ours) == list(theirs), f"{path}: keys differ"
        for key in ours:
            assert_same_tree(ours[key], theirs[key], f"{path}/{key}")
    elif isinstance(ours, list | tuple):
        assert len(ours) == len(theirs), f"{path}: lengths differ"
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same_tree(a, b, f"{path}/{index}")
    elif isinstance(ours, np.ndarray | np.generic):
        assert ours.dtype == theirs.dtype and np.shape(ours) == np.shape(theirs), path
        np.testing.assert_array_equal(ours, theirs, err_msg=path)
    elif isinstance(ours, torch.Tensor):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), path
    elif isinstance(ours, float) and np.isnan(ours):
        assert np.isnan(theirs), path
    else:
        assert ours == theirs, path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny PPO agent trained for two iterations, and its checkpoint (not to be modified)."""
    tiny = BACKEND.conformance_overrides["ppo"]
    agent = Agent(backend="rllib", algorithm="ppo", env="CartPole-v1", seed=0, **tiny)
    agent.train(iterations=2)
    checkpoint = tmp_path_factory.mktemp("codefree") / "ckpt"
    agent.save(checkpoint)
    yield agent, checkpoint
    agent.close()


@pytest.fixture(scope="module")
def loaded(saved):
    """The checkpoint loaded with every unpickler patched to refuse; the calls allowed and refused."""
    _, checkpoint = saved
    allowed: list[str] = []
    refused: list[str] = []
    building = [False]

    def guard(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_code.co_filename
            if building[0] and caller.endswith(REGISTRY):
                allowed.append(name)
                return original(*args, **kwargs)
            refused.append(f"{name} from {caller}")
            raise AssertionError(f"{name} called from {caller} while loading a checkpoint")

        return call

    build = RllibDriver._build.__func__

    def guarded_build(cls: type, spec: Any, env: Any) -> RllibDriver:
        building[0] = True
        try:
            return build(cls, spec, env)
        finally:
            building[0] = False

    with pytest.MonkeyPatch.context() as patch:
        for module, name in UNPICKLERS:
            patch.setattr(module, name, guard(f"{module.__name__}.{name}", getattr(module, name)))
        patch.setattr(RllibDriver, "_build", classmethod(guarded_build))
        agent = Agent.load(checkpoint)
    yield agent, allowed, refused
    agent.close()


def test_load_unpickles_nothing(loaded):
    _, allowed, refused = loaded
    assert refused == []
    assert allowed  # the guards were in place: Ray's registry went through them while building


def test_load_restores_actions_parameters_and_the_whole_algorithm_state(saved, loaded):
    agent, _ = saved
    again, _, _ = loaded
    obs = observations()
    np.testing.assert_array_equal(again.act(obs), agent.act(obs))
    before, after = agent.parameters(), again.parameters()
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[name], after[name]) for name in before)
    assert (again.env_steps, again.iterations, again.episodes) == (
        agent.env_steps,
        agent.iterations,
        agent.episodes,
    )
    # Everything RLlib's own restore would set: weights, optimizer moments, counters, metrics.
    assert_same_tree(again.native.get_state(), agent.native.get_state())


def test_rllibs_pickled_checkpoint_is_exported_but_never_read(saved, tmp_path):
    agent, checkpoint = saved
    copy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, copy)
    native = copy / "native" / CHECKPOINT_DIR
    assert (native / "class_and_ctor_args.pkl").is_file()  # RLlib's own format, as exported
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    payload = pickle.dumps(Payload())
    planted = [path for path in native.rglob("*") if path.is_file() and path.suffix != ".json"]
    assert any(path.suffix == ".pkl" for path in planted)
    for path in planted:
        path.write_bytes(payload)
    rehash(copy)
    again = Agent.load(copy)
    try:
        assert not marker.exists()
        obs = observations()
        np.testing.assert_array_equal(again.act(obs), agent.act(obs))
    finally:
        again.close()
    pickle.loads(planted[0].read_bytes())  # the trap works: reading it would have run the payload
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:.*Overriding environment rllib-")
def test_the_exported_checkpoint_restores_with_rllib(saved):
    from ray.rllib.algorithms.algorithm import Algorithm

    agent, checkpoint = saved
    algo = Algorithm.from_checkpoint((checkpoint / "native" / CHECKPOINT_DIR).absolute())
    try:
        module = "learner_group/learner/rl_module"
        ours = agent.native.get_state(components=module)["learner_group"]["learner"]["rl_module"]
        theirs = algo.get_state(components=module)["learner_group"]["learner"]["rl_module"]
        assert_same_tree(theirs, ours)
    finally:
        algo.stop()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    path.write_text(path.read_text()[:-7])


def _drop_learner(path: Path) -> None:
    document = json.loads(path.read_text())
    del document["state"]["learner_group"]
    path.write_text(json.dumps(document))


def _bad_reference(path: Path) -> None:
    document = json.loads(path.read_text())
    weights = document["state"]["learner_group"]["learner"]["rl_module"]["default_policy"]
    weights[next(iter(weights))] = {"__array__": [10_000, 0]}
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("damage", "name", "words"),
    [
        (_truncate, f"{ALGORITHM_STATE}.npz", "cannot read"),
        (_garble, f"{ALGORITHM_STATE}.json", "cannot read"),
        (_drop_learner, f"{ALGORITHM_STATE}.json", "lacks the state of learner_group"),
        (_bad_reference, f"{ALGORITHM_STATE}.json", "does not match"),
        (_truncate, "polyrl_parameters.npz", "cannot read"),
        (_garble, "polyrl_rllib.json", "cannot read"),
    ],
    ids=[
        "npz-truncated",
        "json-garbled",
        "json-component-missing",
        "json-bad-array",
        "parameters",
        "counters",
    ],
)
def test_a_damaged_state_file_is_corrupt_and_named(saved, tmp_path, damage, name, words):
    _, checkpoint = saved
    copy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, copy)
    damage(copy / "native" / name)
    rehash(copy)  # past the manifest's hashes: the driver itself must notice
    with pytest.raises(CorruptCheckpointError) as caught:
        Agent.load(copy).close()
    assert name in str(caught.value) and words in str(caught.value)


def test_a_checkpoint_of_an_older_polyrl_is_refused_not_unpickled(saved, tmp_path):
    _, checkpoint = saved
    copy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, copy)
    for suffix in ("json", "npz"):
        (copy / "native" / f"{ALGORITHM_STATE}.{suffix}").unlink()
    rehash(copy)
    with pytest.raises(CorruptCheckpointError, match="older polyrl.*Algorithm.from_checkpoint"):
        Agent.load(copy)


def test_the_algorithm_state_round_trips_leaf_for_leaf(saved, tmp_path):
    agent, _ = saved
    state = agent.native.get_state()
    replay.write_tree(state, tmp_path, "tree", "the state")
    tree, _ = replay.read_tree(tmp_path, "tree", "the state")
    assert_same_tree(tree, state)


def test_every_leaf_type_round_trips_and_others_fail_at_save_naming_the_place(tmp_path):
    tree = {
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "empty": np.zeros((0, 2), dtype=np.int8),
        "zero_dim": np.array(3.5),
        "scalars": [np.float64(0.25), np.int64(-3), np.bool_(True), np.float32(np.nan), np.str_("s")],
        "python": [None, True, 7, 2**70, -0.0, float("inf"), "text"],
        "floats": [0.1 * i for i in range(10)],
        "ints": list(range(10)),
        "tuple": (0.9, 0.999),
        "by_int": {0: {"step": 3.0}, 1: {"step": 4.0}},
        "weights": OrderedDict([("b", np.ones(2, dtype=np.float32)), ("a", np.zeros(1, dtype=np.float32))]),
        "tensor": torch.arange(4, dtype=torch.float64),
        "spaces": {"space": {"space": "box", "shape": [2]}},  # kept as data, not taken for an env space
        "infos": {"data": [{"a": 1}, {"b": np.float64(2.0)}]},  # nothing dropped
        "tagged": {"__array__": "not a tag"},
    }
    replay.write_tree(tree, tmp_path, "tree", "the state")
    back, _ = replay.read_tree(tmp_path, "tree", "the state")
    assert_same_tree(back, tree)

    refused = [
        ({"outer": {"inner": lambda: None}}, "outer/inner: a builtins.function"),
        ({"x": torch.zeros(2, dtype=torch.bfloat16)}, "x: a torch tensor of dtype torch.bfloat16"),
        ({"d": defaultdict(list)}, "d: a collections.defaultdict"),
        ({"e": [IntEnum("E", "A").A]}, r"e/\*: a [\w.]*E, which would come back as its base type"),
    ]
    for bad, where in refused:
        with pytest.raises(CheckpointError, match=f"cannot save the state without pickle: {where}"):
            replay.write_tree(bad, tmp_path, "bad", "the state")


def test_an_unrepresentable_state_fails_the_save_naming_the_place(saved, tmp_path, monkeypatch):
    agent, _ = saved
    algo = agent.native
    get_state = algo.get_state
    monkeypatch.setattr(
        algo, "get_state", lambda *a, **k: {**get_state(*a, **k), "custom": {"hook": lambda: None}}
    )
    with pytest.raises(CheckpointError, match="RLlib algorithm state without pickle: custom/hook"):
        agent.save(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
