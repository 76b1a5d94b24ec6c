"""Checkpoints: atomic writes, verification on load, clear errors (fake backend, no RL library)."""

from __future__ import annotations

import json

import numpy as np
import polyrl
import pytest
from polyrl import Agent


def trained(backend: str) -> Agent:
    a = Agent(backend=backend, algorithm="linear", env="CartPole-v1", seed=0, iteration_steps=50)
    a.train(iterations=2)
    return a


def test_save_load_round_trip_restores_actions_counters_and_manifest(fake_backend, tmp_path):
    a = trained(fake_backend)
    a.learning_rate = 0.123
    manifest = a.save(tmp_path / "ck", metadata={"note": "best"})
    assert manifest.backend == "fake" and manifest.spec == a.spec
    assert manifest.versions["python"] and manifest.library_version
    b = Agent.load(tmp_path / "ck")
    obs = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(a.act(obs), b.act(obs))
    assert (b.env_steps, b.iterations, b.learning_rate) == (100, 2, 0.123)
    on_disk = json.loads((tmp_path / "ck" / "polyrl.json").read_text())
    assert on_disk["metadata"] == {"note": "best"} and on_disk["spec"]["backend"] == "fake"


def test_a_crash_mid_save_leaves_the_previous_checkpoint_intact(fake_backend, tmp_path, monkeypatch):
    a = trained(fake_backend)
    a.save(tmp_path / "ck")
    before = (tmp_path / "ck" / "polyrl.json").read_text()

    def crash(directory):
        (directory / "partial.bin").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(a._parts.driver, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        a.save(tmp_path / "ck")
    assert (tmp_path / "ck" / "polyrl.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no staging left behind
    Agent.load(tmp_path / "ck")


def test_saving_over_an_existing_checkpoint_replaces_it(fake_backend, tmp_path):
    a = trained(fake_backend)
    a.save(tmp_path / "ck")
    a.train(iterations=1)
    a.save(tmp_path / "ck")
    assert Agent.load(tmp_path / "ck").iterations == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_refuses_to_save_over_a_foreign_directory(fake_backend, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(polyrl.errors.CheckpointError, match="not a polyrl checkpoint"):
        trained(fake_backend).save(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(polyrl.errors.CheckpointNotFoundError, match=str(tmp_path / "nothing")):
        Agent.load(tmp_path / "nothing")


def test_foreign_directory_is_not_a_checkpoint(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match="no polyrl.json"):
        Agent.load(tmp_path)


def test_truncated_native_file_is_detected_before_loading(fake_backend, tmp_path, monkeypatch):
    trained(fake_backend).save(tmp_path / "ck")
    weights = tmp_path / "ck" / "native" / "weights.npy"
    weights.write_bytes(weights.read_bytes()[:20])
    from fake_backend import FakeDriver

    def never(*args, **kwargs):
        raise AssertionError("the driver must not be asked to load a damaged checkpoint")

    monkeypatch.setattr(FakeDriver, "load", classmethod(never))
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match="weights.npy.*truncated"):
        Agent.load(tmp_path / "ck")


def test_missing_native_file_and_garbled_manifest(fake_backend, tmp_path):
    trained(fake_backend).save(tmp_path / "ck")
    (tmp_path / "ck" / "native" / "state.json").unlink()
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match="state.json is missing"):
        Agent.load(tmp_path / "ck")
    (tmp_path / "ck" / "polyrl.json").write_text("{not json")
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match="unreadable"):
        Agent.load(tmp_path / "ck")


def test_loading_with_another_backend_named_is_refused(fake_backend, tmp_path):
    trained(fake_backend).save(tmp_path / "ck")
    with pytest.raises(
        polyrl.errors.CheckpointBackendMismatchError, match="written by backend 'fake', not 'sb3'"
    ):
        Agent.load(tmp_path / "ck", backend="sb3")
