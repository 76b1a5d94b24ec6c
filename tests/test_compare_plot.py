"""`polyrl compare` and `polyrl plot` on run directories written by hand (no training needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from polyrl.cli import render
from polyrl.cli.app import app
from polyrl.experiments.curves import draw_curves, save_curves
from polyrl.experiments.results import find_runs
from rich.console import Console
from typer.testing import CliRunner

PACKAGE = "my_rather_long_package_name.environments.suite"
LONG_ENVS = [f"{PACKAGE}:make_the_environment_variant_{name}" for name in ("alpha", "beta")]


def write_run(
    directory: Path,
    spec: dict,
    points: list[tuple[int, float | None]],
    eval_return: float | None = None,
) -> Path:
    """A run directory as the grid writes it: config.json, progress.csv and status.json."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"spec": spec}))
    with (directory / "progress.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iteration", "env_steps", "return_mean", "wall_seconds"])
        for index, (steps, value) in enumerate(points, start=1):
            writer.writerow([index, steps, "" if value is None else value, index * 0.5])
    status = {"status": "done", "directory": str(directory), "name": directory.name}
    (directory / "status.json").write_text(json.dumps({**status, "eval_return_mean": eval_return}))
    return directory


@pytest.fixture
def long_named_runs(tmp_path) -> Path:
    """Two groups whose names differ only in their last characters, two seeds each."""
    for env_index, factory in enumerate(LONG_ENVS):
        for seed in (0, 1):
            spec = {"backend": "fake", "env": {"factory": factory, "kwargs": {}}, "seed": seed}
            curve = [(100, 10.0 * env_index + seed), (200, 20.0 * env_index + 2 * seed)]
            write_run(tmp_path / f"run_{env_index}_{seed}", spec, curve, eval_return=5.0 + env_index + seed)
    return tmp_path


def first_column(table_output: str) -> str:
    """The text of a rich table's first body column, every fragment of folded cells joined."""
    fragments = [line.split("│")[1] for line in table_output.splitlines() if line.startswith("│")]
    return "".join("".join(fragments).split())


def test_compare_json_keeps_whole_group_names_and_statistics(long_named_runs):
    done = CliRunner().invoke(
        app, ["compare", str(long_named_runs), "--group-by", "env.factory", "--json"], catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    rows = {row["group"]: row for row in json.loads(done.stdout)}
    alpha, beta = (f"env.factory={factory}" for factory in LONG_ENVS)
    assert sorted(rows) == [alpha, beta]
    assert rows[beta]["runs"] == 2
    assert rows[beta]["final_mean"] == pytest.approx((20.0 + 22.0) / 2)
    assert rows[beta]["best_mean"] == pytest.approx(21.0)
    assert rows[beta]["eval_mean"] == pytest.approx((6.0 + 7.0) / 2)
    assert rows[alpha]["final_std"] == pytest.approx(1.0)


@pytest.mark.parametrize("width", [40, 80])
def test_compare_table_folds_long_group_names_instead_of_cutting_them(long_named_runs, monkeypatch, width):
    monkeypatch.setattr(render, "console", Console(width=width, highlight=False))
    done = CliRunner().invoke(
        app, ["compare", str(long_named_runs), "--group-by", "env.factory"], catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    assert "…" not in done.stdout
    column = first_column(done.stdout)
    for factory in LONG_ENVS:
        assert f"env.factory={factory}" in column


def test_a_group_with_a_single_point_is_drawn_with_a_visible_marker(tmp_path):
    write_run(tmp_path / "one", {"algorithm": "a2c", "seed": 0}, [(100, 12.0)])
    write_run(tmp_path / "many", {"algorithm": "ppo", "seed": 0}, [(100, 10.0), (200, 30.0), (300, 40.0)])
    drawn = draw_curves(find_runs([tmp_path]), ["algorithm"])
    written = save_curves(drawn, tmp_path / "curves")

    assert [path.name for path in written] == ["curves.png", "curves.svg"]
    single, line = drawn.lines["algorithm=a2c"], drawn.lines["algorithm=ppo"]
    assert list(single.get_xdata()) == [100] and list(single.get_ydata()) == [12.0]
    assert single.get_marker() == "o" and single.get_markersize() > 0
    assert len(line.get_xdata()) > 1 and line.get_marker() in ("None", None, "")
    assert drawn.empty == []


def test_plot_names_groups_it_cannot_draw(tmp_path):
    write_run(tmp_path / "empty", {"algorithm": "a2c", "seed": 0}, [(100, None)])
    write_run(tmp_path / "full", {"algorithm": "ppo", "seed": 0}, [(100, 10.0), (200, 30.0)])
    done = CliRunner().invoke(
        app, ["plot", str(tmp_path), "--group-by", "algorithm", "--out", str(tmp_path / "c")],
        catch_exceptions=False,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "not drawn: algorithm=a2c: no return_mean values against env_steps" in done.stderr
    assert (tmp_path / "c.png").stat().st_size > 1000 and "<svg" in (tmp_path / "c.svg").read_text()[:500]
