"""Experiments: run directories, grids in separate processes, failures, resume, rerun, curves, tables."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from pathlib import Path

import polyrl
import pytest
from polyrl.cli.app import app
from polyrl.experiments import ExperimentGrid, RunStatus, rerun
from polyrl.experiments.flags import grid_axes
from polyrl.experiments.naming import experiment_directory, run_directory, variant_name
from pydantic import ValidationError
from typer.testing import CliRunner

pytest.importorskip("stable_baselines3")

TINY = {
    "algorithm": "ppo",
    "env": "CartPole-v1",
    "iteration_steps": 128,
    "batch_size": 64,
    "ppo": {"n_epochs": 1},
    "network": {"hidden": [16]},
}
TIME_COLUMNS = {"iteration_seconds", "wall_seconds", "steps_per_second"}


def test_run_directories_follow_the_date_experiment_seed_layout():
    when = datetime(2026, 11, 25, 13, 5, 9)
    experiment = experiment_directory(Path("data"), "cart pole", when)
    run = run_directory(
        experiment, variant_name("cartpole", {"backend": "sb3", "learning_rate": 0.001}), 3, when
    )
    assert run.as_posix() == "data/2026-11-25_cartpole/2026-11-25_13-05-09-cartpole_backend-sb3_lr-0.001_s3"


def test_grid_flags_vary_on_repeats_and_comma_lists_but_list_fields_keep_their_list():
    axes, config = grid_axes(
        [
            "--backend", "sb3,tianshou",
            "--learning_rate", "1e-3", "--learning_rate", "3e-4",
            "--network.hidden", "64,64",
            "--ppo:n_epochs", "2",
            "--eval_every", "3",
        ]
    )  # fmt: skip
    assert axes == {
        "backend": ["sb3", "tianshou"],
        "learning_rate": [1e-3, 3e-4],
        "network.hidden": [[64, 64]],
        "ppo.n_epochs": [2],
    }
    assert config == {"eval_every": 3}
    axes, _ = grid_axes(["--network.hidden", "64,64", "--network.hidden", "32"])
    assert axes == {"network.hidden": [[64, 64], 32]}
    with pytest.raises(polyrl.errors.ConfigurationError, match="every run of a grid shares one value"):
        grid_axes(["--total_steps", "10,20"])


def test_grid_variants_vary_seeds_fastest_and_reject_unknown_fields(tmp_path):
    grid = ExperimentGrid("g", tmp_path).add("seed", [0, 1]).add("learning_rate", [0.1, 0.2])
    assert grid.variants() == [
        {"learning_rate": 0.1, "seed": 0},
        {"learning_rate": 0.1, "seed": 1},
        {"learning_rate": 0.2, "seed": 0},
        {"learning_rate": 0.2, "seed": 1},
    ]
    with pytest.raises(polyrl.errors.ConfigurationError, match="not an AgentSpec field"):
        grid.add("learning_rat", [1])


def test_every_spec_is_validated_before_any_run_directory_exists(tmp_path):
    grid = ExperimentGrid("bad", tmp_path).add("gamma", [0.9, 2.0])
    with pytest.raises(ValidationError, match="less than or equal"):
        grid.plan(TINY, polyrl.TrainConfig(total_steps=10))
    assert not any(tmp_path.iterdir())


def _rows(directory: Path) -> list[dict[str, str]]:
    with (directory / "progress.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory) -> polyrl.experiments.grid.GridResult:
    """sb3 and tianshou (when installed) x 2 seeds on the local process pool."""
    backends = [
        name for name in ("sb3", "tianshou") if polyrl.plugins.is_installed(polyrl.registry().backend(name))
    ]
    data = tmp_path_factory.mktemp("data")
    grid = ExperimentGrid("two", data).add("backend", backends).add("seed", [0, 1])
    result = grid.run(
        TINY, polyrl.TrainConfig(total_steps=256), eval_episodes=2, workers=2, show_progress=False
    )
    return result


def test_a_grid_runs_every_combination_in_its_own_directory(finished_grid):
    runs = finished_grid.runs
    assert [r.status for r in runs] == ["done"] * len(runs) and len(runs) >= 2
    for status in runs:
        directory = Path(status.directory)
        files = {p.name for p in directory.iterdir()}
        assert {
            "config.json",
            "progress.csv",
            "records.jsonl",
            "plots.png",
            "checkpoint",
            "status.json",
        } <= files
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-two_backend-\w+_s[01]", directory.name
        ) or re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-two_s[01]", directory.name)
        config = json.loads((directory / "config.json").read_text())
        assert (
            config["spec"]["seed"] == status.variant["seed"] and config["train_config"]["total_steps"] == 256
        )
        assert [int(r["env_steps"]) for r in _rows(directory)] == [128, 256]
        assert polyrl.Agent.load(directory / "checkpoint").env_steps == 256
        assert status.eval_return_mean is not None and status.env_steps == 256


def test_rerun_from_config_json_gives_identical_statistics(finished_grid, tmp_path):
    first = next(r for r in finished_grid.runs if r.variant.get("backend", "sb3") == "sb3")
    again = rerun(first.directory, tmp_path / "again")
    assert again.status == "done"
    assert _rows(tmp_path / "again") == _rows(Path(first.directory))
    assert again.eval_return_mean == first.eval_return_mean


def test_compare_and_plot_summarise_groups_over_seeds(finished_grid, tmp_path):
    experiment = finished_grid.experiment_dir
    runner = CliRunner()
    table = runner.invoke(
        app, ["compare", experiment, "--group-by", "backend", "--json"], catch_exceptions=False
    )
    rows = {row["group"]: row for row in json.loads(table.output)}
    sb3_runs = [r for r in finished_grid.runs if r.variant.get("backend", "sb3") == "sb3"]
    evals = [r.eval_return_mean for r in sb3_runs]
    assert rows["backend=sb3"]["runs"] == 2
    assert rows["backend=sb3"]["eval_mean"] == pytest.approx(sum(evals) / 2)
    plotted = runner.invoke(app, ["plot", experiment, "--group-by", "backend", "--out", str(tmp_path / "c")])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "c.png").stat().st_size > 1000 and "<svg" in (tmp_path / "c.svg").read_text()[:500]


def test_a_failing_run_is_reported_and_resume_skips_finished_runs(tmp_path):
    grid = ExperimentGrid("mixed", tmp_path).add("env", ["CartPole-v1", "NoSuchEnv-v0"]).add("seed", [0])
    spec = {**TINY, "algorithm": "a2c", "ppo": None, "batch_size": None}
    result = grid.run(spec, polyrl.TrainConfig(iterations=1), eval_episodes=1, workers=2, show_progress=False)
    by_env = {r.variant["env"]: r for r in result.runs}
    assert by_env["CartPole-v1"].status == "done"
    assert by_env["NoSuchEnv-v0"].status == "failed" and "NoSuchEnv-v0" in by_env["NoSuchEnv-v0"].error
    done_dir = Path(by_env["CartPole-v1"].directory)
    stamp = (done_dir / "status.json").stat().st_mtime_ns

    resumed = ExperimentGrid.resume(result.experiment_dir, workers=1, show_progress=False)
    assert resumed.skipped == [str(done_dir)]
    assert (done_dir / "status.json").stat().st_mtime_ns == stamp
    assert {r.variant["env"]: r.status for r in resumed.runs} == {
        "CartPole-v1": "done",
        "NoSuchEnv-v0": "failed",
    }
    assert RunStatus.read(done_dir).status == "done"


def test_resume_of_a_directory_that_is_no_experiment_says_what_to_give(tmp_path):
    with pytest.raises(polyrl.errors.ConfigurationError, match="is not an experiment directory"):
        ExperimentGrid.resume(tmp_path)
