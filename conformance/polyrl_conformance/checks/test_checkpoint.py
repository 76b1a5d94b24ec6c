"""save() and load(): equal actions, the manifest, resuming, wrong backend, damaged checkpoints."""

from __future__ import annotations

import polyrl
import pytest
from polyrl import Agent, CheckpointManifest
from polyrl.manifest import MANIFEST_NAME, NATIVE_DIR
from polyrl.plugins import library_version

from polyrl_conformance.scenario import AlgorithmScenario, actions_equal, spy_on_driver


def test_save_load_actions(scenario: AlgorithmScenario) -> None:
    """An agent loaded from a checkpoint returns the same deterministic actions as the agent that
    saved it on a fixed batch of observations (equal for discrete actions, within 1e-6 for
    continuous ones), with the same counters and learning rate."""
    saved = scenario.checkpoint().state
    loaded = scenario.reloaded().state
    assert actions_equal(saved.actions, loaded.actions), (
        f"saved agent: {saved.actions!r}\nloaded agent: {loaded.actions!r}"
    )
    assert loaded.counters() == saved.counters(), (
        f"counters after load {loaded.counters()}, when saved {saved.counters()}"
    )
    assert loaded.learning_rate == pytest.approx(saved.learning_rate, rel=1e-6)


def test_manifest(scenario: AlgorithmScenario) -> None:
    """The checkpoint's polyrl.json names the backend, its library and the library's installed
    version, the polyrl version, the agent's spec and counters, and lists the native files the
    backend wrote (at least one), each present on disk."""
    saved = scenario.checkpoint()
    manifest = CheckpointManifest.model_validate_json((saved.path / MANIFEST_NAME).read_text())
    info = scenario.info
    assert manifest.backend == info.name
    assert manifest.library == info.library
    assert manifest.library_version is not None and manifest.library_version == library_version(info)
    assert manifest.polyrl_version == polyrl.__version__
    assert manifest.spec == scenario.spec
    assert (manifest.env_steps, manifest.iterations, manifest.episodes) == (
        saved.state.env_steps,
        saved.state.iterations,
        saved.state.episodes,
    )
    assert manifest.files, "the backend wrote no native files"
    assert all((saved.path / NATIVE_DIR / name).is_file() for name in manifest.files)


def test_resume(scenario: AlgorithmScenario) -> None:
    """Training an agent loaded from a checkpoint continues it: the iteration number and the env-step
    and episode counters go on from the saved values instead of restarting at zero."""
    saved = scenario.checkpoint().state
    result = scenario.resumed()
    assert len(result.records) == 1
    record = result.records[0]
    assert record.iteration == saved.iterations + 1
    assert record.iteration_env_steps > 0
    assert record.env_steps == saved.env_steps + record.iteration_env_steps, (
        f"saved at {saved.env_steps} env steps, one more iteration of {record.iteration_env_steps} "
        f"gave env_steps={record.env_steps}"
    )
    assert record.episodes == saved.episodes + record.iteration_episodes
    assert result.env_steps == scenario.reloaded().agent.env_steps


def test_load_wrong_backend(scenario: AlgorithmScenario) -> None:
    """Agent.load(path, backend=<another backend>) raises polyrl.errors.CheckpointBackendMismatchError
    naming both backends."""
    saved = scenario.checkpoint()
    name = scenario.info.name
    other = next((n for n in sorted(polyrl.registry().backends()) if n != name), f"not_{name}")
    with pytest.raises(polyrl.errors.CheckpointBackendMismatchError) as raised:
        Agent.load(saved.path, backend=other, trust_env_factory=True)
    assert name in str(raised.value) and other in str(raised.value)


def _cut_largest_native_file(path) -> None:
    files = [f for f in (path / NATIVE_DIR).rglob("*") if f.is_file()]
    largest = max(files, key=lambda f: f.stat().st_size)
    size = largest.stat().st_size
    if size < 2:
        largest.unlink()
    else:
        with largest.open("r+b") as handle:
            handle.truncate(size // 2)


def _cut_manifest(path) -> None:
    manifest = path / MANIFEST_NAME
    manifest.write_bytes(manifest.read_bytes()[: manifest.stat().st_size // 2])


def test_truncated_checkpoint(scenario: AlgorithmScenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent.load on a checkpoint whose largest native file was truncated, or whose manifest was cut
    short, raises polyrl.errors.CorruptCheckpointError, and the backend's driver is never asked to
    load it (no half-loaded agent)."""
    native = scenario.damaged_copy("truncated-native", _cut_largest_native_file)
    manifest = scenario.damaged_copy("truncated-manifest", _cut_manifest)
    load = spy_on_driver(monkeypatch, scenario.info.name, "load")
    for damaged in (native, manifest):
        with pytest.raises(polyrl.errors.CorruptCheckpointError):
            Agent.load(damaged, trust_env_factory=True)
    assert load.calls == [], "the driver's load() ran on a damaged checkpoint"
