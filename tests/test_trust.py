"""Trust and data safety (issue 16): loading runs no named code, manifests are checked, save
deletes nothing foreign, specs are bounded. Real files in tmp dirs, the fake backend."""

from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polyrl
import pytest
from polyrl import Agent, AgentSpec, PlayConfig, TrainConfig
from polyrl.cli.app import app
from pydantic import ValidationError
from typer.testing import CliRunner

TESTS = Path(__file__).parent


def trained(backend: str, **fields) -> Agent:
    a = Agent(backend=backend, algorithm="linear", env="CartPole-v1", seed=0, iteration_steps=50, **fields)
    a.train(iterations=1)
    return a


def edit_manifest(checkpoint: Path, **changes) -> None:
    path = checkpoint / "polyrl.json"
    document = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "spec_env":
            document["spec"]["env"] = value
        else:
            document[key] = value
    path.write_text(json.dumps(document))


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """An importable module whose import and factory leave marks on disk; yields the mark dir."""
    marks = tmp_path / "marks"
    marks.mkdir()
    code = tmp_path / "code"
    code.mkdir()
    (code / "evil_mod.py").write_text(
        textwrap.dedent(f"""
        from pathlib import Path
        import gymnasium as gym
        Path({str(marks)!r}, "imported").touch()

        def make(**kwargs):
            Path({str(marks)!r}, "called").touch()
            return gym.make("CartPole-v1")
        """)
    )
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.delitem(sys.modules, "evil_mod", raising=False)
    return marks


# -- 1. loading runs no code named by the checkpoint --------------------------------------------
def test_a_factory_named_by_a_checkpoint_is_not_imported_without_consent(fake_backend, tmp_path, evil_module):
    trained(fake_backend).save(tmp_path / "ck")
    edit_manifest(tmp_path / "ck", spec_env={"factory": "evil_mod:make", "kwargs": {"x": 1}})
    with pytest.raises(polyrl.errors.UntrustedCheckpointError) as caught:
        Agent.load(tmp_path / "ck")
    message = str(caught.value)
    assert "'evil_mod:make'" in message and "trust_env_factory=True" in message
    assert "env=" in message and "--trust-env-factory" in message
    assert isinstance(caught.value, polyrl.errors.CheckpointError)
    assert not any(evil_module.iterdir()) and "evil_mod" not in sys.modules

    agent = Agent.load(tmp_path / "ck", trust_env_factory=True)
    assert {p.name for p in evil_module.iterdir()} == {"imported", "called"}
    assert agent.iterations == 1


def test_os_system_as_factory_is_refused(fake_backend, tmp_path):
    trained(fake_backend).save(tmp_path / "ck")
    edit_manifest(tmp_path / "ck", spec_env={"factory": "os:system", "kwargs": {"command": "touch PWNED"}})
    with pytest.raises(polyrl.errors.UntrustedCheckpointError, match="'os:system' with arguments"):
        Agent.load(tmp_path / "ck")


def test_a_caller_supplied_env_needs_no_trust(fake_backend, tmp_path, evil_module):
    trained(fake_backend).save(tmp_path / "ck")
    edit_manifest(tmp_path / "ck", spec_env={"factory": "evil_mod:make"})
    agent = Agent.load(tmp_path / "ck", env="CartPole-v1")
    assert agent.env_source.name == "CartPole-v1" and not any(evil_module.iterdir())


def test_a_gymnasium_id_with_a_module_prefix_counts_as_code(fake_backend, tmp_path, evil_module):
    trained(fake_backend).save(tmp_path / "ck")
    edit_manifest(tmp_path / "ck", spec_env="evil_mod:CartPole-v1")
    with pytest.raises(
        polyrl.errors.UntrustedCheckpointError, match="'evil_mod' prefix makes Gymnasium import"
    ):
        Agent.load(tmp_path / "ck")
    assert not any(evil_module.iterdir())


def test_plain_gymnasium_ids_load_as_before(fake_backend, tmp_path):
    trained(fake_backend).save(tmp_path / "ck")
    assert Agent.load(tmp_path / "ck").env_source.name == "CartPole-v1"


def test_cli_play_needs_the_trust_flag_for_a_factory(fake_backend, tmp_path, evil_module):
    trained(fake_backend).save(tmp_path / "ck")
    edit_manifest(tmp_path / "ck", spec_env={"factory": "evil_mod:make"})
    runner = CliRunner()
    refused = runner.invoke(app, ["play", str(tmp_path / "ck")], env={"COLUMNS": "250"})
    assert refused.exit_code == 2, refused.output
    assert "UntrustedCheckpointError" in refused.output and "--trust-env-factory" in refused.output
    assert not any(evil_module.iterdir())
    for command in ("play", "evaluate"):
        allowed = runner.invoke(
            app, [command, str(tmp_path / "ck"), "--trust-env-factory", "--episodes", "1"]
        )
        assert allowed.exit_code == 0, allowed.output
    assert (evil_module / "called").exists()


# -- 2. the manifest is checked before the backend reads anything -------------------------------
@pytest.fixture
def no_driver_load(monkeypatch):
    from fake_backend import FakeDriver

    def never(*args, **kwargs):
        raise AssertionError("the driver must not read a refused checkpoint")

    monkeypatch.setattr(FakeDriver, "load", classmethod(never))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format_version": 2}, "format_version 2.*reads format_version 1 only"),
        ({"backend": "sb3"}, "backend 'sb3' differs from its spec's backend 'fake'"),
        ({"env_steps": -5}, "env_steps"),
        ({"iterations": -1}, "iterations"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"learning_rate": math.inf}, "learning_rate"),
        (
            {"files": {"../escape.npy": {"size": 1, "sha256": "0" * 64}}},
            "'../escape.npy' is not a relative path",
        ),
        ({"files": {"/etc/passwd": {"size": 1, "sha256": "0" * 64}}}, "'/etc/passwd' is not a relative path"),
        ({"files": {"w.npy": {"size": -1, "sha256": "0" * 64}}}, "size"),
    ],
)
def test_inconsistent_manifests_are_corrupt(fake_backend, tmp_path, no_driver_load, changes, expected):
    trained(fake_backend).save(tmp_path / "ck")
    edit_manifest(tmp_path / "ck", **changes)
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match=expected):
        Agent.load(tmp_path / "ck")


def test_symlinked_native_files_are_refused(fake_backend, tmp_path, no_driver_load):
    trained(fake_backend).save(tmp_path / "ck")
    weights = tmp_path / "ck" / "native" / "weights.npy"
    outside = tmp_path / "outside.npy"
    outside.write_bytes(weights.read_bytes())  # same size and hash: only the link is wrong
    weights.unlink()
    weights.symlink_to(outside)
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match="native/weights.npy is a symbolic link"):
        Agent.load(tmp_path / "ck")


def test_a_symlinked_manifest_is_refused(fake_backend, tmp_path):
    trained(fake_backend).save(tmp_path / "ck")
    manifest = tmp_path / "ck" / "polyrl.json"
    (tmp_path / "real.json").write_text(manifest.read_text())
    manifest.unlink()
    manifest.symlink_to(tmp_path / "real.json")
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match="polyrl.json is a symbolic link"):
        Agent.load(tmp_path / "ck")


def test_an_unlisted_native_file_is_named(fake_backend, tmp_path, no_driver_load):
    trained(fake_backend).save(tmp_path / "ck")
    (tmp_path / "ck" / "native" / "sub").mkdir()
    (tmp_path / "ck" / "native" / "sub" / "payload.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(polyrl.errors.CorruptCheckpointError, match="native/sub/payload.pkl is not listed"):
        Agent.load(tmp_path / "ck")


# -- 3. save never deletes what is not its own ---------------------------------------------------
def test_a_directory_with_a_foreign_polyrl_json_is_left_intact(fake_backend, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "polyrl.json").write_text('{"my": "config"}')
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(
        polyrl.errors.CheckpointError, match="not a polyrl checkpoint.*polyrl.json, thesis.tex"
    ):
        trained(fake_backend).save(target)
    assert (target / "thesis.tex").read_text() == "precious"
    assert json.loads((target / "polyrl.json").read_text()) == {"my": "config"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("foreign", ["notes.txt", "native/extra.bin"])
def test_a_checkpoint_holding_foreign_files_is_not_replaced(fake_backend, tmp_path, foreign):
    agent = trained(fake_backend)
    agent.save(tmp_path / "ck")
    (tmp_path / "ck" / foreign).write_text("mine")
    before = (tmp_path / "ck" / "polyrl.json").read_text()
    with pytest.raises(polyrl.errors.CheckpointError, match=f"does not list: {foreign}"):
        agent.save(tmp_path / "ck")
    assert (tmp_path / "ck" / foreign).read_text() == "mine"
    assert (tmp_path / "ck" / "polyrl.json").read_text() == before


def test_an_empty_existing_directory_is_used(fake_backend, tmp_path):
    (tmp_path / "ck").mkdir()
    trained(fake_backend).save(tmp_path / "ck")
    assert Agent.load(tmp_path / "ck").iterations == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_saving_through_a_symlink_is_refused(fake_backend, tmp_path):
    agent = trained(fake_backend)
    agent.save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(polyrl.errors.CheckpointError, match="is a symbolic link.*Save to the real path"):
        agent.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and Agent.load(tmp_path / "real").iterations == 1


def test_stale_staging_dirs_are_removed_but_live_and_unrelated_ones_kept(fake_backend, tmp_path):
    stale = tmp_path / ".ck.tmp-deadbeef"
    (stale / "native").mkdir(parents=True)
    (stale / "native" / "half.bin").write_bytes(b"x")
    live = tmp_path / ".ck.tmp-0123abcd"
    live.mkdir()
    unrelated = [tmp_path / ".ck.tmp-notmine", tmp_path / ".other.tmp-deadbeef", tmp_path / "ck.tmp-deadbeef"]
    for directory in unrelated:
        directory.mkdir()
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a save in progress elsewhere holds it
        trained(fake_backend).save(tmp_path / "ck")
    finally:
        os.close(fd)
    assert not stale.exists() and live.exists() and all(d.exists() for d in unrelated)
    Agent.load(tmp_path / "ck")


def test_a_file_where_a_directory_should_be_is_a_checkpoint_error(fake_backend, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(
        polyrl.errors.CheckpointWriteError, match=f"cannot save the checkpoint to {tmp_path}/file.txt/ck"
    ):
        trained(fake_backend).save(tmp_path / "file.txt" / "ck")


def test_a_permission_error_while_writing_is_a_checkpoint_error(fake_backend, tmp_path, monkeypatch):
    agent = trained(fake_backend)

    def denied(directory):
        raise PermissionError(13, "Permission denied", str(directory / "weights.npy"))

    monkeypatch.setattr(agent._parts.driver, "save", denied)
    with pytest.raises(polyrl.errors.CheckpointError, match="Permission denied.*weights.npy") as caught:
        agent.save(tmp_path / "ck")
    assert str(tmp_path / "ck") in str(caught.value) and isinstance(caught.value, OSError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_a_checkpoint_error(fake_backend, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(polyrl.errors.CheckpointWriteError, match="Permission denied"):
            trained(fake_backend).save(locked / "ck")
    finally:
        locked.chmod(0o755)


CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import polyrl
from fake_backend import FakePlugin
polyrl.registry().register(FakePlugin(), name="fake-plugin")
target, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
agent = polyrl.Agent(backend="fake", algorithm="linear", env="CartPole-v1", seed=int(sys.argv[4]))
write = agent._parts.driver.save
def slow(directory):
    write(directory)
    ready.touch()
    deadline = time.time() + 60
    while not go.exists() and time.time() < deadline:
        time.sleep(0.01)
agent._parts.driver.save = slow
try:
    agent.save(target)
    print("saved")
except polyrl.errors.CheckpointError as exc:
    print("lost", type(exc).__name__, exc)
"""


def test_two_processes_saving_to_one_new_path_give_one_checkpoint_and_one_error(fake_backend, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS)))
    target, go = tmp_path / "out" / "ck", tmp_path / "go"
    (tmp_path / "out").mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(target), str(tmp_path / f"ready{i}"), str(go), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(c.poll() is None for c in children), [
            c.communicate() for c in children if c.poll() is not None
        ]
        time.sleep(0.02)
    go.touch()  # both have written their staging dirs and saw no checkpoint at the target
    outputs = sorted(c.communicate(timeout=120)[0].strip() for c in children)
    assert outputs[1] == "saved", outputs
    assert outputs[0].startswith("lost CheckpointError") and "another save created it" in outputs[0]
    assert Agent.load(target).env_steps == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ck"]


# -- 4. specs are validated before anything is allocated ---------------------------------------
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"seed": 2**70}, r"a seed must be an int in \[0, 2\*\*32\)"),
        ({"seed": -1}, r"a seed must be an int in \[0, 2\*\*32\)"),
        ({"seed": True}, "got the boolean True"),
        ({"n_envs": True}, "got the boolean True"),
        ({"learning_rate": True}, "got the boolean True"),
        ({"gamma": False}, "got the boolean False"),
        ({"network": {"hidden": [64, True]}}, "got a boolean"),
        ({"learning_rate": math.inf}, "finite number"),
        ({"learning_rate": math.nan}, "finite number"),
        ({"n_envs": 1025}, "less than or equal to 1024"),
        ({"iteration_steps": 10**8 + 1}, "less than or equal to 100000000"),
        ({"network": {"hidden": [65537]}}, "less than or equal to 65536"),
        ({"algorithm": "dqn", "dqn": {"buffer_size": 10**9 + 1}}, "less than or equal to 1000000000"),
        ({"algorithm": "sac", "sac": {"ent_coef": True}}, "got the boolean True"),
    ],
)
def test_bad_spec_numbers_are_rejected(fields, expected):
    with pytest.raises(ValidationError, match=expected):
        AgentSpec(**fields)


def test_valid_numbers_still_pass():
    spec = AgentSpec(seed=2**32 - 1, learning_rate=1, n_envs=1024, network={"hidden": [256, 256]})
    assert spec.learning_rate == 1.0 and spec.seed == 2**32 - 1
    assert AgentSpec(algorithm="sac", sac={"ent_coef": "auto"}).sac.ent_coef == "auto"
    assert AgentSpec.model_validate_json('{"seed": 3, "learning_rate": 3e-4}').seed == 3


def test_a_network_larger_than_half_the_memory_is_refused(monkeypatch):
    from polyrl import spec as spec_module

    monkeypatch.setattr(spec_module, "physical_memory_bytes", lambda: 2**30)  # a 1 GiB machine
    with pytest.raises(
        ValidationError, match=r"network.hidden \[16384, 16384\] needs about 1.0 GiB.*limit 0.5 GiB"
    ):
        AgentSpec(network={"hidden": [16384, 16384]})
    AgentSpec(network={"hidden": [1024, 1024]})


def test_run_configs_reject_bools_infinities_and_huge_seeds():
    for bad in ({"iterations": True}, {"time_limit": math.inf}, {"total_steps": 10, "eval_seed": 2**40}):
        with pytest.raises(ValidationError):
            TrainConfig(**bad)
    for bad in ({"episodes": True}, {"seed": 2**32}):
        with pytest.raises(ValidationError):
            PlayConfig(**bad)
    assert PlayConfig(deterministic=False).deterministic is False


def test_a_nan_note_in_metadata_is_saved_as_null(fake_backend, tmp_path):
    manifest = trained(fake_backend).save(tmp_path / "ck", metadata={"value": math.nan})
    assert manifest.metadata == {"value": None}
    assert json.loads((tmp_path / "ck" / "polyrl.json").read_text())["metadata"] == {"value": None}
