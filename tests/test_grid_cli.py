"""`polyrl grid` from the command line: seed flags, default names, validation, counts, Ctrl-C and resume.

Runs use the fake backend. A grid runs each run in a fresh process, so the fake backend is also
installed the way a third-party plugin is (a dist-info directory with an entry point on
PYTHONPATH); its module adds a CartPole whose steps wait while a gate file names the run's seed,
which holds a run "running" for as long as a test needs, without depending on timing.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polyrl
import pytest
from polyrl.cli.app import app
from polyrl.experiments.flags import grid_axes, grid_train_config, seed_axis
from polyrl.experiments.naming import default_experiment_name
from typer.testing import CliRunner

TESTS = Path(__file__).parent
PLUGIN_MODULE = "polyrl_grid_test_plugin"
GATE_VARIABLE = "POLYRL_TEST_GATE"
FAKE = ["--backend", "fake", "--algo", "linear", "--iteration_steps", "50", "--eval-episodes", "1"]

PLUGIN_SOURCE = f'''
"""The fake backend as an installed plugin, and a CartPole that waits at a gate file."""

import os
import time
from pathlib import Path

import gymnasium as gym
import polyrl
from fake_backend import FakePlugin

_PLUGIN = FakePlugin()


@polyrl.backend.hookimpl
def polyrl_backends():
    return _PLUGIN.polyrl_backends()


class Gate(gym.Wrapper):
    """Steps wait while the file {GATE_VARIABLE} names the seed of the env's first reset."""

    def __init__(self, env):
        super().__init__(env)
        self.run_seed = None
        self.was_reset = False

    def reset(self, *, seed=None, options=None):
        if not self.was_reset:
            self.run_seed, self.was_reset = seed, True
        return super().reset(seed=seed, options=options)

    def step(self, action):
        gate = Path(os.environ["{GATE_VARIABLE}"])
        while gate.is_file() and str(self.run_seed) in gate.read_text().split():
            (gate.parent / f"waiting-{{self.run_seed}}").touch()
            time.sleep(0.05)
        return super().step(action)


def gated_cartpole(**kwargs):
    return Gate(gym.make("CartPole-v1", **kwargs))
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    """A PYTHONPATH under which fresh processes see the fake backend as an installed plugin."""
    site = tmp_path_factory.mktemp("site")
    (site / f"{PLUGIN_MODULE}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist_info = site / "polyrl_grid_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: polyrl-grid-test-plugin\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[polyrl]\nfake_grid_test = {PLUGIN_MODULE}\n")
    return os.pathsep.join(filter(None, [str(site), str(TESTS), os.environ.get("PYTHONPATH")]))


@pytest.fixture
def cli(fake_backend, plugin_path, monkeypatch):
    """Invoke `polyrl` in this process; its run processes find the fake backend through PYTHONPATH."""
    monkeypatch.setenv("PYTHONPATH", plugin_path)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def words(text: str) -> str:
    return " ".join(text.split())


def statuses(experiment_dir: str) -> dict[int, str]:
    found = {}
    for path in Path(experiment_dir).glob("*/status.json"):
        status = json.loads(path.read_text())
        found[status["variant"]["seed"]] = status["status"]
    return found


# -- 1. the seed flag is the seed axis --------------------------------------------------------------


def test_the_seed_field_flag_is_the_seed_axis_like_seeds():
    axes, _ = grid_axes(["--backend", "sb3,tianshou", "--seed", "0,1"])
    assert seed_axis(None, axes, {}) == [0, 1]
    axes, _ = grid_axes(["--seed", "3", "--seed", "4"])
    assert seed_axis(None, axes, {}) == [3, 4]
    assert seed_axis(["0,1", "2"], {}, {}) == [0, 1, 2]
    assert seed_axis(None, {}, {"seed": 7}) == [7]  # the spec file's seed is kept
    assert seed_axis(None, {}, {}) == [0]


def test_seed_and_seeds_together_are_refused_naming_both():
    axes, _ = grid_axes(["--seed", "0,1"])
    with pytest.raises(polyrl.errors.ConfigurationError, match=r"both --seed \(0, 1\) and --seeds \(2\)"):
        seed_axis(["2"], axes, {})


def test_steps_given_twice_are_refused_not_dropped():
    with pytest.raises(polyrl.errors.ConfigurationError, match="--steps 100, --total_steps 200"):
        grid_train_config([100], {"total_steps": 200})
    with pytest.raises(polyrl.errors.ConfigurationError, match="--steps 100, --steps 200"):
        grid_train_config([100, 200], {})
    assert grid_train_config([100], {"eval_every": 2}).model_dump(exclude_defaults=True) == {
        "total_steps": 100,
        "eval_every": 2,
    }


def test_a_grid_with_a_seed_flag_runs_every_seed(cli, tmp_path):
    done = cli(
        "grid", "seeded", *FAKE, "--seed", "0,1", "--steps", "100", "--json", "--data-dir", str(tmp_path)
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert sorted((r["variant"]["seed"], r["status"], r["env_steps"]) for r in report["runs"]) == [
        (0, "done", 100),
        (1, "done", 100),
    ]
    assert statuses(report["experiment_dir"]) == {0: "done", 1: "done"}


def test_seed_and_seeds_on_the_command_line_fail_before_any_directory(cli, tmp_path):
    done = cli(
        "grid", "both", *FAKE, "--seed", "0,1", "--seeds", "2", "--steps", "100", "--data-dir", str(tmp_path)
    )
    assert done.exit_code == 2
    assert done.stdout == ""
    assert "--seed" in words(done.stderr) and "--seeds" in words(done.stderr)
    assert list(tmp_path.iterdir()) == []


# -- 2. NAME is optional ----------------------------------------------------------------------------


def test_the_default_name_joins_backends_algorithms_and_envs():
    assert default_experiment_name({}, {"backend": ["sb3", "tianshou"], "algorithm": ["ppo"]}) == (
        "sb3+tianshou_ppo_CartPole-v1"
    )
    assert default_experiment_name({"algorithm": "dqn", "env": "Acrobot-v1"}, {}) == "dqn_Acrobot-v1"
    assert default_experiment_name({"env": {"factory": "my.envs:make_maze"}}, {}) == "ppo_make_maze"
    many = {"env": ["A-v0", "B-v0", "C-v0", "D-v0"], "seed": [0]}
    assert default_experiment_name({}, many) == "ppo_4envs"


def test_grid_without_a_name_runs_and_names_the_experiment(cli, tmp_path):
    done = cli("grid", *FAKE, "--env", "CartPole-v1", "--steps", "100", "--json", "--data-dir", str(tmp_path))
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    experiment = Path(report["experiment_dir"])
    assert experiment.parent == tmp_path and experiment.name.endswith("_fake_linear_CartPole-v1")
    assert report["counts"] == {"done": 1, "skipped": 0, "failed": 0, "interrupted": 0, "total": 1}


# -- 6. nothing is printed (or written) before every spec is valid ----------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ["--gamma", "0.9,2.0"],  # the second run's spec is invalid
        ["--algo", "linear,ppo"],  # the fake backend has no ppo
        ["--backend", "fake,nosuch"],
        ["--no_such_field", "1"],
    ],
)
def test_invalid_grids_fail_before_any_output_or_directory(cli, tmp_path, flags):
    done = cli("grid", "bad", *FAKE, *flags, "--steps", "100", "--data-dir", str(tmp_path))
    assert done.exit_code == 2
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


# -- 3. counts, --json and resume -------------------------------------------------------------------


def test_counts_tell_done_skipped_failed_apart_and_resume_reruns_the_failed(cli, tmp_path):
    first = cli(
        "grid", "mixed", *FAKE, "--env", "CartPole-v1,NoSuchEnv-v0", "--steps", "100", "--json",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert first.exit_code == 1, first.output
    report = json.loads(first.stdout)
    assert report["counts"] == {"done": 1, "skipped": 0, "failed": 1, "interrupted": 0, "total": 2}
    by_env = {r["variant"]["env"]: r for r in report["runs"]}
    assert by_env["NoSuchEnv-v0"]["status"] == "failed" and "NoSuchEnv-v0" in by_env["NoSuchEnv-v0"]["error"]
    experiment = report["experiment_dir"]
    assert f"polyrl grid --resume {shlex.quote(experiment)}" in first.stderr

    again = cli("grid", "--resume", experiment)
    assert again.exit_code == 1
    assert f"{experiment}: 1 done (1 skipped as already done), 1 failed, 0 interrupted" in again.stdout
    resumed = json.loads(cli("grid", "--resume", experiment, "--json").stdout)
    assert resumed["counts"] == {"done": 1, "skipped": 1, "failed": 1, "interrupted": 0, "total": 2}
    assert resumed["skipped"] == [by_env["CartPole-v1"]["directory"]]


def test_text_output_names_the_experiment_first_and_counts_last(cli, tmp_path):
    done = cli(
        "grid",
        "text",
        *FAKE,
        "--seed",
        "0,1",
        "--steps",
        "100",
        "--workers",
        "1",
        "--data-dir",
        str(tmp_path),
    )
    assert done.exit_code == 0, done.output
    [experiment] = tmp_path.iterdir()
    lines = done.stdout.splitlines()
    assert lines[0] == f"{experiment}: 2 run(s), 1 at a time"
    assert lines[-1] == f"{experiment}: 2 done, 0 failed, 0 interrupted"
    assert done.stderr == ""


def test_resume_refuses_options_that_would_change_the_plan(cli, tmp_path):
    done = cli("grid", *FAKE, "--steps", "100", "--json", "--data-dir", str(tmp_path))
    experiment = json.loads(done.stdout)["experiment_dir"]
    refused = cli("grid", "--resume", experiment, "--seeds", "1", "--gamma", "0.9")
    assert refused.exit_code == 2
    assert "drop --seeds, --gamma 0.9" in words(refused.stderr)


@pytest.mark.parametrize("target", ["process group", "grid process"])
def test_ctrl_c_marks_running_and_queued_runs_interrupted_and_resume_finishes_them(
    plugin_path, tmp_path, target
):
    """Ctrl-C in a terminal signals the whole process group; `kill -INT PID` the grid process alone."""
    gate = tmp_path / "gate"
    gate.write_text("1")  # the run of seed 1 waits; seed 0 finishes first, seed 2 is still queued
    environment = {**os.environ, "PYTHONPATH": plugin_path, GATE_VARIABLE: str(gate), "CI": "true"}
    command = [
        sys.executable, "-m", "polyrl.cli.app", "grid", "gated", "--backend", "fake", "--algo", "linear",
        "--env.factory", f"{PLUGIN_MODULE}:gated_cartpole", "--seed", "0,1,2", "--steps", "100",
        "--iteration_steps", "50", "--eval-episodes", "0", "--workers", "1", "--json",
        "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline, waiting = time.monotonic() + 120, tmp_path / "waiting-1"
        while not waiting.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not waiting.exists():
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"the gated run never started (exit {process.returncode}):\n{out}\n{err}")
        if target == "process group":
            os.killpg(process.pid, signal.SIGINT)
        else:
            os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

    assert process.returncode == 130, out + err
    report = json.loads(out)
    experiment = report["experiment_dir"]
    assert report["counts"] == {"done": 1, "skipped": 0, "failed": 0, "interrupted": 2, "total": 3}
    assert {r["variant"]["seed"]: r["status"] for r in report["runs"]} == {
        0: "done",
        1: "interrupted",
        2: "interrupted",
    }
    assert statuses(experiment) == {0: "done", 1: "interrupted", 2: "interrupted"}
    assert "--resume" in err
    assert shlex.join(["polyrl", "grid", "--resume", experiment, "--workers", "1"]) in err

    gate.unlink()
    resume = [sys.executable, "-m", "polyrl.cli.app", "grid", "--resume", experiment, "--json"]
    resumed = subprocess.run(resume, env=environment, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["counts"] == {"done": 3, "skipped": 1, "failed": 0, "interrupted": 0, "total": 3}
    assert statuses(experiment) == {0: "done", 1: "done", 2: "done"}
    assert [r["env_steps"] for r in report["runs"]] == [100, 100, 100]
