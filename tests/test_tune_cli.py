"""`polyrl tune` from the command line, and worker processes sharing one SQLite study.

The in-process tests use the "tunable" fake backend (tests/tune_backend.py) registered in this
process. Worker processes cannot see that registration, so for them the same module is also
installed the way a third-party plugin is: a dist-info directory with an entry point, on
PYTHONPATH.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polyrl
import pytest
from polyrl.cli.app import app
from polyrl.experiments.plan import RunStatus
from typer.testing import CliRunner

optuna = pytest.importorskip("optuna")

from tune_backend import plugin  # noqa: E402 - after the skip: the module is the test's plugin

TESTS = Path(__file__).parent
FIXED = [
    "--backend", "tunable", "--algo", "linear", "--env", "CartPole-v1",
    "--env_kwargs", '{"max_episode_steps": 50}', "--iteration_steps", "100",
    "--steps", "200", "--eval-every", "100", "--eval-episodes", "1", "--sampler", "random",
]  # fmt: skip


@pytest.fixture
def cli(tmp_path):
    """Invoke `polyrl` in this process with the tunable backends registered."""
    polyrl.registry().register(plugin, name="tune-cli-test-plugin")
    runner = CliRunner()
    try:
        yield lambda *args: runner.invoke(app, list(args), catch_exceptions=False)
    finally:
        polyrl.registry().unregister(plugin)


@pytest.fixture
def space_file(tmp_path) -> Path:
    path = tmp_path / "space.json"
    path.write_text(
        json.dumps({"learning_rate": {"categorical": [0.001, 0.1]}, "gamma": {"float": [0.9, 0.99]}})
    )
    return path


def test_tune_prints_one_json_report(cli, tmp_path, space_file):
    out = tmp_path / "study"
    done = cli("tune", "cli", *FIXED, "--space", str(space_file), "--trials", "3", "--fresh-seeds", "1",
               "--out", str(out), "--json")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)  # stdout holds the report alone; trial lines went to stderr
    (study,) = report["studies"]
    assert study["study"] == "cli" and study["counts"]["total"] == 3
    assert study["best_spec"] == str(out / "best.json") and len(study["fresh"]["seeds"]) == 1
    assert [Path(p).name for p in study["plots"]] == ["history.png", "importance.png"]
    assert study["top"][0]["value"] == study["best"]["value"]
    assert "trial 0:" in done.stderr
    # The spec flags are the base spec of every trial.
    spec = json.loads((out / "best.json").read_text())
    assert spec["iteration_steps"] == 100 and spec["env_kwargs"] == {"max_episode_steps": 50}


def test_compare_reads_a_study_directory(cli, tmp_path, space_file):
    out = tmp_path / "study"
    assert cli("tune", "cmp", *FIXED, "--space", str(space_file), "--trials", "2", "--fresh-seeds", "1",
               "--out", str(out)).exit_code == 0  # fmt: skip
    done = cli("compare", str(out), "--group-by", "learning_rate", "--json")
    assert done.exit_code == 0, done.stderr
    rows = json.loads(done.stdout)
    assert sum(row["runs"] for row in rows) == 3  # two trials and one fresh seed


def test_a_bad_space_exits_2_naming_the_field_and_writes_nothing(cli, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"linear.n_epochs": {"int": [1, 4]}, "gamma": {"categorical": [0.9, 2.0]}}))
    out = tmp_path / "study"
    done = cli("tune", "bad", *FIXED, "--space", str(space), "--out", str(out))
    assert done.exit_code == 2
    message = " ".join(done.stderr.split())
    assert "linear.n_epochs: not an AgentSpec field" in message
    assert "gamma: the choice 2.0 is rejected by AgentSpec" in message
    assert not out.exists()


def test_a_second_start_is_refused_and_resume_continues(cli, tmp_path, space_file):
    out = tmp_path / "study"
    args = ["tune", "again", *FIXED, "--space", str(space_file), "--fresh-seeds", "0", "--out", str(out)]
    assert cli(*args, "--trials", "1").exit_code == 0
    refused = cli(*args, "--trials", "2")
    assert refused.exit_code == 2 and "--resume" in " ".join(refused.stderr.split())
    resumed = cli("tune", "again", "--resume", "--out", str(out), "--trials", "2", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["studies"][0]["counts"]["complete"] == 2


def test_a_ready_space_needs_no_file(cli, tmp_path):
    done = cli("tune", "ready", "--algo", "ppo", "--env", "CartPole-v1", "--backend", "sb3,tianshou",
               "--trials", "1", "--out", str(tmp_path / "x"), "--storage", "nonsense://")  # fmt: skip
    # Planning (both backends' ready PPO space validated) succeeded; the bad storage URL is refused next.
    assert done.exit_code == 2
    assert "cannot open the study storage nonsense://" in " ".join(done.stderr.split())


def test_a_study_without_env_or_with_a_seed_is_refused(cli, tmp_path, space_file):
    out = tmp_path / "study"
    no_env = [arg for arg in FIXED if arg not in ("--env", "CartPole-v1")]
    done = cli("tune", "noenv", *no_env, "--space", str(space_file), "--out", str(out))
    assert done.exit_code == 2 and "error (StudyError): a study needs an environment" in done.stderr
    done = cli("tune", "seeded", *FIXED, "--seed", "5", "--space", str(space_file), "--out", str(out))
    assert done.exit_code == 2 and "give --study-seed 5" in done.stderr
    assert not out.exists()


def test_fixed_flags_are_left_out_of_the_ready_space(cli, tmp_path, monkeypatch):
    ready = {"learning_rate": {"categorical": [0.001, 0.1]}, "iteration_steps": {"categorical": [50, 150]}}
    monkeypatch.setitem(polyrl.tuning.READY_SPACES, "linear", ready)
    out = tmp_path / "study"
    done = cli("tune", "ready", *FIXED, "--trials", "2", "--fresh-seeds", "0", "--out", str(out), "--json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["searched"] == ["learning_rate"]
    assert report["fixed"] == ["env_kwargs.max_episode_steps", "iteration_steps"]
    assert done.stderr.splitlines()[0] == (
        "searched: learning_rate; fixed by you: env_kwargs.max_episode_steps, iteration_steps"
    )
    assert json.loads((out / "best.json").read_text())["iteration_steps"] == 100


def test_an_iteration_larger_than_the_steps_is_a_warning_in_the_report(cli, tmp_path, space_file):
    large = [*FIXED[: FIXED.index("--iteration_steps")], "--iteration_steps", "400",
             *FIXED[FIXED.index("--iteration_steps") + 2 :]]  # fmt: skip
    done = cli("tune", "large", *large, "--space", str(space_file), "--trials", "1", "--fresh-seeds", "0",
               "--out", str(tmp_path / "study"), "--json")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["warnings"][0].startswith("iteration_steps is fixed at 400: 400 env steps per iteration")
    assert report["warnings"][1].startswith("study large: 1 of 1 trials (trial 0) collected up to 400")
    assert all("--iteration-steps" in text for text in report["warnings"])
    assert "warning: iteration_steps is fixed at 400" in done.stderr


def test_a_study_whose_trials_all_failed_says_so_and_draws_nothing(cli, tmp_path, space_file):
    out = tmp_path / "study"
    args = ["tune", "fails", *FIXED, "--backend_options", '{"explode": true}', "--space", str(space_file),
            "--trials", "2", "--fresh-seeds", "0", "--out"]  # fmt: skip
    done = cli(*args, str(out))
    assert done.exit_code == 1
    lines = done.stdout.splitlines()
    assert (
        "all 2 trials failed: first reason: FloatingPointError: the loss became NaN (backend_options.explode)"
        in lines
    )
    assert not any("top trials" in line or line.startswith("plots:") for line in lines)
    assert not list(out.glob("*.png"))
    report = json.loads(cli(*args, str(tmp_path / "again"), "--json").stdout)
    (study,) = report["studies"]
    assert study["plots"] == [] and study["counts"]["failed"] == 2 and study["top"] == []


# -- two worker processes on one SQLite study ---------------------------------------------------------


@pytest.fixture
def plugin_path(tmp_path_factory, monkeypatch) -> None:
    """Worker processes see the tunable backends as an installed plugin."""
    site = tmp_path_factory.mktemp("site")
    dist_info = site / "polyrl_tune_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: polyrl-tune-test-plugin\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text("[polyrl]\ntunable_test = tune_backend:plugin\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(site), str(TESTS), os.environ.get("PYTHONPATH")]))
    )


def test_two_workers_complete_the_trials_between_them_none_twice(cli, tmp_path, plugin_path):
    space = tmp_path / "space.json"
    # Each iteration sleeps 0.2 s: a trial lasts most of a second, so both workers get trials.
    space.write_text(
        json.dumps({"learning_rate": {"float": [0.05, 0.2]}, "backend_options.sleep": {"categorical": [0.2]}})
    )
    out = tmp_path / "study"
    trials = 5  # odd: the last trial is the one both workers would reach for at once
    done = cli("tune", "pair", *FIXED, "--space", str(space), "--trials", str(trials), "--workers", "2",
               "--fresh-seeds", "0", "--out", str(out), "--json")  # fmt: skip
    assert done.exit_code == 0, done.stderr + "".join(p.read_text() for p in (out / "workers").glob("*.log"))
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    finished = optuna.load_study(study_name="pair", storage=storage).get_trials()
    assert sorted(t.number for t in finished) == list(range(trials))
    assert all(t.state.name == "COMPLETE" for t in finished)
    assert {t.user_attrs["worker"] for t in finished} == {0, 1}
    directories = [d for t in finished for d in t.user_attrs["directories"]]
    assert len(set(directories)) == trials and len(list((out / "trials").iterdir())) == trials
    assert all(RunStatus.read(out / d).status == "done" for d in directories)
    assert sorted(p.name for p in (out / "workers").iterdir()) == ["worker-0.log", "worker-1.log"]
    assert json.loads(done.stdout)["studies"][0]["counts"]["complete"] == trials
    assert done.stderr.count("complete") == trials  # each trial announced once, as the study shows it
