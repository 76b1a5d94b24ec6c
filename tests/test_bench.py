"""`polyrl bench`: the cells, threshold verdicts, the runner's clock, reports and the README table.

Learning itself is covered by tests/test_bench_ci.py; here a pure-NumPy fake backend runs in
this process so every test stays fast.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import polyrl
import pytest
from polyrl.cli.app import app
from polyrl.errors import ConfigurationError
from polyrl_conformance.bench import report as reporting
from polyrl_conformance.bench.baseline import compare
from polyrl_conformance.bench.cells import BenchCell, backend_cells, declared_cells, select_cells
from polyrl_conformance.bench.matrix import (
    CONTINUOUS_ENVS,
    DISCRETE_ENVS,
    ENV_THRESHOLDS,
    IMAGE_ENVS,
    MATRIX,
    NESTED,
    SLICES,
    covering_slice,
)
from polyrl_conformance.bench.merge import merge_reports
from polyrl_conformance.bench.overhead import measure_ratio
from polyrl_conformance.bench.protocol import thin_curve
from polyrl_conformance.bench.records import BenchReport, CellResult, CurvePoint, RatioResult, SeedResult
from polyrl_conformance.bench.runner import finished_ratio, run_cells, seed_directory
from pydantic import ValidationError
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ("sb3", "rllib", "tianshou")
MINATAR = "MinAtar/Breakout-v1"
#: Every declared backend's cells, built-in ones tuned by their plugins' polyrl_bench_cells.
CELLS = [cell for cell in declared_cells() if cell.backend in BUILTIN]


def tiny_cell(**fields) -> BenchCell:
    """A fake-backend cell of a few hundred steps that cannot reach CartPole's threshold."""
    document = {
        "backend": "fake",
        "algorithm": "linear",
        "env": "CartPole-v1",
        "budget_steps": 300,
        "solve_threshold": 475.0,
        "min_return": 475.0,
        "spec": {"iteration_steps": 100},
        "eval_every_steps": 100,
        "eval_episodes": 2,
        "ratio_steps": 200,
        "slices": ["ci", "default", "full"],
    }
    document.update(fields)
    return BenchCell.model_validate(document)


class DirectFake:
    """A direct-library hook for the fake backend: pretends the library needs 0.5 s."""

    @polyrl.backend.hookimpl
    def polyrl_direct_training(self, spec, total_steps):
        return 0.5 if spec.backend == "fake" else None


# -- the cells file ------------------------------------------------------------------------------
def test_every_builtin_cell_is_consistent():
    keys = [(c.key, tuple(c.slices)) for c in CELLS]
    assert len({k for k, _ in keys}) == len(keys), "a cell is defined twice"
    for cell in CELLS:
        assert cell.solve_threshold == ENV_THRESHOLDS[cell.env]
        assert cell.min_return <= cell.solve_threshold
        assert cell.note, f"{cell.key} does not say where its min_return comes from"
        # the nested slices: a cell of a smaller one is in every bigger one; images: the image envs
        nested = [s for s in cell.slices if s in NESTED]
        assert nested == list(NESTED[NESTED.index(nested[0]) :]) and "full" in nested
        assert ("images" in cell.slices) == (cell.env in IMAGE_ENVS)
        spec = cell.agent_spec(seed=3)
        assert (spec.backend, spec.algorithm, spec.env, spec.seed) == (
            cell.backend,
            cell.algorithm,
            cell.env,
            3,
        )


def test_the_slices_hold_the_issue_matrix_for_each_builtin_backend():
    for backend in BUILTIN:
        own = [c for c in CELLS if c.backend == backend]
        by_slice = {s: {(c.algorithm, c.env) for c in own if s in c.slices} for s in SLICES}
        assert by_slice["ci"] == {("ppo", "CartPole-v1")}
        expected = {
            ("ppo", "CartPole-v1"),
            ("dqn", "CartPole-v1"),
            ("ppo", "Pendulum-v1"),
            ("sac", "Pendulum-v1"),
        }
        assert by_slice["default"] == expected
        assert {env for _, env in by_slice["full"]} == set(ENV_THRESHOLDS)
        # every built-in backend has PPO and DQN with a CNN for images: both MinAtar cells
        assert by_slice["images"] == {("ppo", MINATAR), ("dqn", MINATAR)}
        assert by_slice["images"] <= by_slice["full"]
    assert {c.algorithm for c in CELLS if c.backend == "sb3"} == {"ppo", "a2c", "dqn", "sac", "td3"}
    assert {c.algorithm for c in CELLS if c.backend == "rllib"} == {"ppo", "dqn", "sac"}


@pytest.mark.parametrize("backend", BUILTIN)
def test_builtin_cells_map_onto_their_backend(backend):
    """Every cell's spec is accepted by its backend's parameter mapping (no training, no Ray)."""
    info = polyrl.registry().backend(backend)
    if not polyrl.plugins.is_installed(info):
        pytest.skip(f"{backend} is not installed")
    from polyrl.envs import EnvSource

    for cell in (c for c in CELLS if c.backend == backend):
        spec = cell.agent_spec(0)
        env = EnvSource.from_spec(spec)
        if backend == "sb3":
            from polyrl_sb3.params import sb3_kwargs

            sb3_kwargs(spec, env.action_space, env.observation_space)
        elif backend == "tianshou":
            from polyrl_tianshou.params import settings

            settings(spec, env.action_space, env.observation_space)
        else:
            from polyrl_rllib.params import build_config, read_settings

            build_config(spec, "CartPole-v1", read_settings(spec), env.observation_space)


def test_a_cell_refuses_fields_it_owns_and_a_min_return_above_solved():
    with pytest.raises(ValidationError, match="must not set"):
        tiny_cell(spec={"seed": 1})
    with pytest.raises(ValidationError, match="above the solve threshold"):
        tiny_cell(min_return=500.0)
    with pytest.raises(ValidationError):
        tiny_cell(slices=["nightly"])


def test_third_party_backends_get_the_matrix_cells_their_algorithms_fit():
    info = polyrl.backend.BackendInfo(
        name="acme",
        description="",
        driver="acme:Driver",
        library="acme",
        requires=[],
        install_hint="acme",
        algorithms={
            "ppo": polyrl.backend.AlgorithmInfo(action_spaces=["discrete"], on_policy=True),
            "sac": polyrl.backend.AlgorithmInfo(action_spaces=["box"], on_policy=False),
        },
    )
    cells = backend_cells(info)  # no tuning: what a plugin without polyrl_bench_cells gets
    vectors = {
        (a, e)
        for a, e in MATRIX
        if (a == "ppo" and e in DISCRETE_ENVS and e not in IMAGE_ENVS)
        or (a == "sac" and e in CONTINUOUS_ENVS)
    }
    assert {(c.algorithm, c.env) for c in cells} == vectors  # no "image" declared: no MinAtar cell
    assert all(c.min_return == c.solve_threshold == ENV_THRESHOLDS[c.env] for c in cells)
    assert [c.key for c in cells if "ci" in c.slices] == ["acme/ppo/CartPole-v1"]
    ppo = info.algorithms["ppo"].model_copy(update={"observation_spaces": ["box", "image"]})
    seeing = info.model_copy(update={"algorithms": {**info.algorithms, "ppo": ppo}})
    images = [c for c in backend_cells(seeing) if "images" in c.slices]
    assert [(c.key, c.slices) for c in images] == [("acme/ppo/MinAtar/Breakout-v1", ["full", "images"])]


def test_select_cells_filters_and_names_bad_input(fake_backend):
    ci = select_cells("ci", ["sb3"]) if importlib.util.find_spec("stable_baselines3") else []
    assert [c.key for c in ci] in ([], ["sb3/ppo/CartPole-v1"])
    assert select_cells("default", ["fake"]) == []  # the fake backend declares no matrix algorithm
    pool = [
        tiny_cell(),
        tiny_cell(env="Acrobot-v1", solve_threshold=-100.0, min_return=-100.0, slices=["full"]),
    ]
    assert [c.env for c in select_cells("full", ["fake"], cells=pool)] == ["CartPole-v1", "Acrobot-v1"]
    assert [c.env for c in select_cells("ci", ["fake"], cells=pool)] == ["CartPole-v1"]
    pool.append(tiny_cell(env=MINATAR, solve_threshold=10.0, min_return=1.0, slices=["full", "images"]))
    assert [c.env for c in select_cells("images", ["fake"], cells=pool)] == [MINATAR]
    full = select_cells("full", ["fake"], cells=pool)
    assert [c.env for c in full] == ["CartPole-v1", "Acrobot-v1", MINATAR]
    assert select_cells("full", ["fake"], envs=["Pendulum-v1"], cells=pool) == []
    with pytest.raises(ValueError, match="unknown slice"):
        select_cells("nightly")  # type: ignore[arg-type]
    with pytest.raises(polyrl.errors.UnknownBackendError):
        select_cells("ci", ["nope"])
    with pytest.raises(polyrl.errors.BackendNotInstalledError, match="polyrl\\[ghost\\]"):
        select_cells("ci", ["ghost"])


# -- running cells -------------------------------------------------------------------------------
def test_a_cell_below_its_threshold_fails_naming_cell_threshold_and_value(fake_backend, tmp_path):
    lines: list[str] = []
    [result] = run_cells([tiny_cell()], 1, tmp_path, ratio=False, isolate=False, report=lines.append)
    [seed] = result.seeds
    assert seed.status == "done" and not seed.solved and seed.env_steps == 300
    assert seed.final_return_mean is not None and seed.final_return_mean < 475
    assert not result.passed
    assert (
        result.message
        == f"cell fake/linear/CartPole-v1: eval return {seed.final_return_mean:.1f} < threshold 475.0"
    )
    assert any("FAILED: cell fake/linear/CartPole-v1: eval return" in line for line in lines)
    # evaluations on the env-step cadence, noted in progress.csv; the clock is the iterations' own
    assert [(p.env_steps, p.eval_return_mean is not None) for p in seed.curve] == [
        (100, True),
        (200, True),
        (300, True),
    ]
    directory = Path(seed.directory or "")
    with (directory / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["eval_return_mean"]) for r in rows] == [p.eval_return_mean for p in seed.curve]
    assert seed.train_seconds == pytest.approx(sum(float(r["iteration_seconds"]) for r in rows))
    assert seed.steps_per_second == pytest.approx(300 / seed.train_seconds)
    assert seed.wall_seconds >= seed.setup_seconds + seed.train_seconds + seed.eval_seconds - 1e-6
    assert json.loads((directory / "config.json").read_text())["spec"]["seed"] == 0
    assert SeedResult.model_validate_json((directory / "result.json").read_text()) == seed


def test_stop_at_threshold_records_steps_and_training_seconds_of_the_first_crossing(fake_backend, tmp_path):
    cell = tiny_cell(solve_threshold=5.0, min_return=5.0, budget_steps=1000)
    [result] = run_cells(
        [cell], 2, tmp_path, stop_at_threshold=True, ratio=False, isolate=False, report=print
    )
    assert result.passed and result.solved_seeds == 2
    for seed in result.seeds:
        assert seed.solved and seed.stop_reason == "solve threshold 5 reached"
        assert seed.steps_to_threshold == seed.env_steps == seed.curve[-1].env_steps
        assert seed.seconds_to_threshold == pytest.approx(seed.train_seconds)
        assert seed.final_return_mean is not None and seed.final_return_mean >= 5.0
    assert result.steps_to_threshold == sum(s.steps_to_threshold or 0 for s in result.seeds) / 2


def test_a_failing_seed_fails_its_cell_with_the_error(fake_backend, tmp_path):
    cell = tiny_cell(algorithm="discrete_only", env="Pendulum-v1", solve_threshold=-200.0, min_return=-200.0)
    [result] = run_cells([cell], 1, tmp_path, ratio=False, isolate=False, report=print)
    assert result.seeds[0].status == "failed"
    assert result.message is not None
    assert result.message.startswith(
        "cell fake/discrete_only/Pendulum-v1: seed 0 failed: UnsupportedSpaceError"
    )


def test_long_curves_are_thinned_but_keep_every_evaluation_and_the_end():
    curve = [
        CurvePoint(
            env_steps=5 * i,
            train_seconds=0.01 * i,
            return_mean=1.0,
            eval_return_mean=9.0 if i % 997 == 0 else None,
        )
        for i in range(1, 10_001)
    ]
    kept = thin_curve(curve, points=500)
    assert len(kept) <= 520
    assert [p.env_steps for p in kept if p.eval_return_mean is not None] == [
        5 * i for i in range(997, 10_001, 997)
    ]
    assert kept[-1] == curve[-1] and kept == sorted(kept, key=lambda p: p.env_steps)
    assert thin_curve(curve[:10]) == curve[:10]


def test_the_ratio_is_the_median_polyrl_time_over_the_direct_hooks(fake_backend):
    assert measure_ratio(tiny_cell(), repeats=1).available is False  # no hook for the fake backend
    plugin = DirectFake()
    polyrl.registry().register(plugin, name="direct-fake")
    try:
        ratio = measure_ratio(tiny_cell(), repeats=3)
    finally:
        polyrl.registry().unregister(plugin)
    assert ratio.available and ratio.error is None and ratio.repeats == 3 and ratio.env_steps == 200
    assert ratio.direct_seconds == [0.5, 0.5, 0.5]
    assert ratio.ratio == pytest.approx(sorted(ratio.polyrl_seconds)[1] / 0.5)


def test_builtin_plugins_implement_the_direct_hook_and_answer_none_for_others():
    hook = polyrl.registry().manager.hook.polyrl_direct_training
    implementers = {impl.plugin_name for impl in hook.get_hookimpls()}
    assert {"sb3", "rllib", "tianshou"} <= implementers
    assert hook(spec=polyrl.AgentSpec(backend="fake", algorithm="linear"), total_steps=10) is None


def test_bench_imports_no_backend_library():
    code = (
        "import sys, polyrl_conformance.bench, polyrl_conformance.bench.cli, "
        "polyrl_conformance.bench.runner, polyrl_conformance.bench.report, "
        "polyrl_conformance.bench.overhead, polyrl_conformance.plugin\n"
        "from polyrl_conformance.bench.cells import select_cells\n"
        "select_cells('full')\n"
        "print([m for m in ('torch', 'ray', 'stable_baselines3', 'tianshou') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- reports -------------------------------------------------------------------------------------
@pytest.fixture
def finished(fake_backend, tmp_path) -> BenchReport:
    """A report of two fake cells: one passing (stopped at a low threshold), one failing."""
    cells = [tiny_cell(solve_threshold=5.0, min_return=5.0, budget_steps=500), tiny_cell()]
    results = run_cells(
        cells[:1], 1, tmp_path / "a", stop_at_threshold=True, ratio=False, isolate=False, report=print
    )
    results += run_cells(cells[1:], 2, tmp_path / "b", ratio=False, isolate=False, report=print)
    return BenchReport(
        slice="ci",
        command="polyrl bench --slice ci --backend fake",
        seeds=1,
        stop_at_threshold=True,
        machine=reporting.machine_info(),
        total_seconds=12.0,
        cells=results,
    ).with_verdict()


def test_report_files_hold_machine_cells_failures_and_curves(finished, tmp_path):
    assert not finished.passed
    assert finished.failures == [finished.cells[1].message]
    written = reporting.write_report(finished, tmp_path / "out")
    stem = f"{finished.machine.date[:10]}-ci"
    assert sorted(p.name for p in written) == sorted(
        [f"{stem}.json", f"{stem}.md", f"{stem}.png", "latest.json", "latest.md"]
    )
    again = reporting.read_report(tmp_path / "out" / "latest.json")
    assert again == finished
    assert (tmp_path / "out" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "out" / f"{stem}.md").read_text()
    machine = finished.machine
    assert machine.cpu_model in text and f"{machine.cores} cores" in text and "load average" in text
    assert "| fake/linear/CartPole-v1 | 500 |" in text and "| pass |" in text and "| **FAIL** |" in text
    assert f"- {finished.failures[0]}" in text
    assert f"![learning curves]({stem}.png)" in text
    mean, std = finished.cells[1].final_return_mean, finished.cells[1].final_return_std
    assert f"{mean:.1f} ± {std:.1f}" in text  # two seeds: mean ± std
    document = json.loads((tmp_path / "out" / "latest.json").read_text())
    assert document["machine"]["load_average_start"] == finished.machine.load_average_start
    assert document["cells"][0]["seeds"][0]["curve"][0]["env_steps"] == 100


def test_readme_table_replaces_only_the_marked_block(finished, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{reporting.README_START}\nold table\n{reporting.README_END}\nafter\n")
    assert reporting.update_readme(readme, finished, "benchmarks/results/latest.json") is True
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert "| fake | linear | CartPole-v1 | 500 |" in text
    assert "Generated from `benchmarks/results/latest.json`" in text
    assert "Failing: cell fake/linear/CartPole-v1: eval return" in text
    assert reporting.update_readme(readme, finished, "benchmarks/results/latest.json") is False
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(ConfigurationError, match="bench-table:start"):
        reporting.update_readme(tmp_path / "bare.md", finished, "x")


def test_cli_rechecks_a_results_file_rewrites_the_readme_and_exits_1(finished, tmp_path):
    reporting.write_report(finished, tmp_path / "in", latest=False, draw=False)
    source = next((tmp_path / "in").glob("*.json"))
    readme = tmp_path / "README.md"
    readme.write_text(f"{reporting.README_START}\n{reporting.README_END}\n")
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "bench",
            "--from-results",
            str(source),
            "--update-readme",
            str(readme),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 1
    assert "cell fake/linear/CartPole-v1: eval return" in result.output
    assert "| fake | linear | CartPole-v1 |" in readme.read_text()
    assert not (tmp_path / "out").exists()  # re-checking writes no new results


def test_cli_lists_cells_and_refuses_an_empty_selection():
    runner = CliRunner()
    listed = runner.invoke(app, ["bench", "--slice", "ci", "--list"])
    assert listed.exit_code == 0
    installed = polyrl.plugins.installed_names(polyrl.registry().backends())
    assert sorted(line.split("/")[0] for line in listed.output.splitlines() if "/ppo/" in line) == installed
    full = runner.invoke(app, ["bench", "--full", "--list"])
    assert (
        full.exit_code == 0
        and full.output == runner.invoke(app, ["bench", "--slice", "full", "--list"]).output
    )
    images = runner.invoke(app, ["bench", "--slice", "images", "--list"])
    assert images.exit_code == 0
    assert sorted(line.split(":")[0] for line in images.output.splitlines() if line) == sorted(
        f"{backend}/{algorithm}/{MINATAR}" for backend in installed for algorithm in ("ppo", "dqn")
    )
    assert set(images.output.splitlines()) <= set(full.output.splitlines())  # images are in full
    contradiction = runner.invoke(app, ["bench", "--full", "--slice", "ci", "--list"])
    assert contradiction.exit_code == 2 and "contradicts --slice ci" in contradiction.output
    empty = runner.invoke(app, ["bench", "--slice", "ci", "--env", "Pendulum-v1"])
    assert empty.exit_code == 2 and "no cells in the ci slice" in empty.output


def test_the_readme_table_is_generated_from_the_committed_results():
    latest = ROOT / "benchmarks" / "results" / "latest.json"
    report = reporting.read_report(latest)
    text = (ROOT / "README.md").read_text()
    block = text[
        text.index(reporting.README_START) + len(reporting.README_START) : text.index(reporting.README_END)
    ]
    assert block.strip() == reporting.readme_table(report, "benchmarks/results/latest.json").strip()
    assert CellResult.summarize(report.cells[0].cell, report.cells[0].seeds).passed == report.cells[0].passed


# -- merging results -----------------------------------------------------------------------------
def _report(results: list[CellResult], command: str, slice_name: str = "default", **machine) -> BenchReport:
    return BenchReport(
        slice=slice_name,
        command=command,
        seeds=max(len(c.seeds) for c in results),
        stop_at_threshold=False,
        machine=reporting.machine_info().model_copy(update=machine),
        total_seconds=10.0,
        cells=results,
    ).with_verdict()


def _ratio(polyrl_seconds: list[float], direct_seconds: list[float], steps: int = 200) -> RatioResult:
    return RatioResult(
        available=True,
        env_steps=steps,
        repeats=len(polyrl_seconds),
        polyrl_seconds=polyrl_seconds,
        direct_seconds=direct_seconds,
        polyrl_median=sorted(polyrl_seconds)[len(polyrl_seconds) // 2],
        direct_median=sorted(direct_seconds)[len(direct_seconds) // 2],
        ratio=1.0,
    )


def test_merge_pools_seeds_and_ratios_of_the_same_cell_and_rejudges(fake_backend, tmp_path):
    low = tiny_cell(min_return=0.0)
    other = tiny_cell(env="Acrobot-v1", solve_threshold=-100.0, min_return=-500.0)
    first = run_cells([low], 2, tmp_path / "a", ratio=False, isolate=False, report=print)
    later = run_cells([low, other], 1, tmp_path / "b", ratio=False, isolate=False, report=print, first_seed=2)
    assert [s.seed for s in later[0].seeds] == [2] and [s.seed for s in later[1].seeds] == [2]
    first[0] = first[0].model_copy(update={"ratio": _ratio([1.0, 3.0], [1.0, 1.0])})
    later[0] = later[0].model_copy(update={"ratio": _ratio([2.0], [2.0])})
    merged = merge_reports(
        [_report(first, "polyrl bench --seeds 2"), _report(later, "polyrl bench --first-seed 2", "full")],
        ["a.json", "b.json"],
        "polyrl bench --merge a.json --merge b.json",
    )
    assert [c.cell.key for c in merged.cells] == [low.key, other.key]
    pooled = merged.cells[0]
    assert [s.seed for s in pooled.seeds] == [0, 1, 2]
    finals = [s.final_return_mean for s in pooled.seeds]
    assert pooled.final_return_mean == pytest.approx(sum(finals) / 3)
    assert pooled.ratio is not None and pooled.ratio.repeats == 3
    assert pooled.ratio.polyrl_seconds == [1.0, 3.0, 2.0] and pooled.ratio.ratio == pytest.approx(2.0 / 1.0)
    assert merged.slice == "full" and merged.seeds == 3 and merged.passed and merged.total_seconds == 20.0
    assert merged.merged_commands == ["polyrl bench --seeds 2", "polyrl bench --first-seed 2"]
    assert "- seeds per cell: 1 to 3;" in reporting.markdown(merged)
    assert "  - merges `polyrl bench --first-seed 2`" in reporting.markdown(merged)
    assert f"| fake | linear | Acrobot-v1 | 300 | 1 | {merged.cells[1].final_return_mean:.1f} |" in (
        reporting.readme_table(merged, "x.json")
    )


def test_merge_refuses_repeated_seeds_changed_cells_and_other_hardware(fake_backend, tmp_path):
    [result] = run_cells([tiny_cell()], 1, tmp_path / "a", ratio=False, isolate=False, report=print)
    report = _report([result], "polyrl bench")
    with pytest.raises(ConfigurationError, match=r"seed\(s\) \[0\] are in a.json and in b.json"):
        merge_reports([report, report], ["a.json", "b.json"], "merge")
    changed = result.model_copy(update={"cell": tiny_cell(budget_steps=400)})
    with pytest.raises(ConfigurationError, match="cell fake/linear/CartPole-v1 has different settings"):
        merge_reports([report, _report([changed], "x")], ["a.json", "b.json"], "merge")
    elsewhere = _report([result], "x", cpu_model="Other CPU", cores=64)
    with pytest.raises(ConfigurationError, match="b.json ran on Other CPU with 64 cores but a.json"):
        merge_reports([report, elsewhere], ["a.json", "b.json"], "merge")
    upgraded = _report([result], "x", versions={**report.machine.versions, "gymnasium": "9.9"})
    with pytest.raises(ConfigurationError, match=r"different versions \(gymnasium .* vs 9.9\)"):
        merge_reports([report, upgraded], ["a.json", "b.json"], "merge")
    [again] = run_cells([tiny_cell()], 1, tmp_path / "c", ratio=False, isolate=False, first_seed=1)
    runner_7 = _report([again], "x", hostname="ci-runner-7")  # same hardware, another host: fine
    merged = merge_reports([report, runner_7], ["a.json", "b.json"], "merge")
    assert merged.machine.hostname == f"{report.machine.hostname}, ci-runner-7"


def test_cli_merges_results_files_and_fails_on_a_failing_cell(finished, tmp_path):
    failing = finished.model_copy(update={"cells": finished.cells[1:]}).with_verdict()  # seeds 0 and 1
    reporting.write_report(failing, tmp_path / "in", latest=False, draw=False)
    source = next((tmp_path / "in").glob("*.json"))
    result = CliRunner().invoke(
        app, ["bench", "--merge", str(source), "--merge", str(source), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "seed(s) [0, 1] are in" in result.output
    alone = CliRunner().invoke(app, ["bench", "--merge", str(source), "--out", str(tmp_path / "out")])
    assert alone.exit_code == 1 and "cell fake/linear/CartPole-v1: eval return" in alone.output
    merged = reporting.read_report(tmp_path / "out" / "latest.json")
    assert merged.merged_commands == [failing.command]
    assert merged.cells[0].final_return_mean == failing.cells[0].final_return_mean


def test_merge_judges_a_builtin_cell_by_todays_pass_line_when_it_trains_alike():
    today = next(c for c in CELLS if c.key == "sb3/ppo/Pendulum-v1")
    stored = today.model_copy(update={"min_return": today.solve_threshold, "note": "not measured yet"})
    seed = SeedResult(
        seed=0, status="done", final_return_mean=today.min_return + 1, best_eval_return_mean=0.0
    )
    piece = _report([CellResult.summarize(stored, [seed])], "polyrl bench --slice default")
    assert not piece.passed  # by the stored (old) pass line
    merged = merge_reports([piece], ["old.json"], "merge")
    assert merged.passed and merged.cells[0].cell == today
    retrained = stored.model_copy(update={"budget_steps": 1000})
    merged = merge_reports([_report([CellResult.summarize(retrained, [seed])], "x")], ["old.json"], "merge")
    assert not merged.passed and merged.cells[0].cell == retrained  # trained otherwise: its own line


# -- against a baseline --------------------------------------------------------------------------
def _slower(report: BenchReport, factor: float) -> BenchReport:
    """The report with its seeds' steps to threshold multiplied (0: they never reached it)."""
    [cell] = report.cells
    seeds = [
        seed.model_copy(
            update={
                "steps_to_threshold": int((seed.steps_to_threshold or 0) * factor) or None,
                "solved": factor > 0,
            }
        )
        for seed in cell.seeds
    ]
    return report.model_copy(update={"cells": [CellResult.summarize(cell.cell, seeds)]})


@pytest.fixture
def solved(finished) -> BenchReport:
    """The passing cell of `finished` alone: it reached its threshold."""
    return finished.model_copy(update={"cells": finished.cells[:1]}).with_verdict()


def test_baseline_shows_each_cell_next_to_the_baseline_and_judges_env_steps(solved, tmp_path):
    base = solved.cells[0].steps_to_threshold
    assert base and solved.passed
    compared = compare(_slower(solved, 3.0), solved, tmp_path / "base.json", max_slowdown=None)
    assert compared.baseline is not None and compared.passed  # without a limit: reported only
    [row] = compared.baseline.rows
    assert row.cell == solved.cells[0].cell.key and row.slowdown == pytest.approx(3.0)
    assert row.baseline_steps_per_second == solved.cells[0].steps_per_second
    text = reporting.markdown(compared)
    assert "## Against the baseline" in text and f"| {3 * base:,.0f} / {base:,.0f} (3.00x) |" in text
    strict = compare(_slower(solved, 3.0), solved, tmp_path / "base.json", max_slowdown=2.0)
    assert not strict.passed and strict.failures == [
        f"cell {row.cell}: {3 * base:,.0f} env steps to the solve threshold, 3.00x the baseline's "
        f"{base:,.0f} (allowed 2x)"
    ]
    assert compare(_slower(solved, 1.5), solved, tmp_path / "b.json", 2.0).passed
    lost = compare(_slower(solved, 0), solved, tmp_path / "b.json", 2.0)
    assert lost.failures == [
        f"cell {row.cell}: did not reach the solve threshold; the baseline did at {base:,.0f} env steps"
    ]
    never = solved.model_copy(
        update={"cells": [solved.cells[0].model_copy(update={"steps_to_threshold": None})]}
    )
    assert compare(_slower(solved, 0), never, tmp_path / "b.json", 2.0).passed  # nothing to be slower than


def test_cli_fails_a_slowdown_against_the_baseline_and_needs_a_baseline_for_the_limit(solved, tmp_path):
    passing = solved
    reporting.write_report(passing, tmp_path / "base", latest=False, draw=False)
    reporting.write_report(_slower(passing, 4.0), tmp_path / "now", latest=False, draw=False)
    [base], [now] = list((tmp_path / "base").glob("*.json")), list((tmp_path / "now").glob("*.json"))
    runner = CliRunner()
    alone = runner.invoke(app, ["bench", "--from-results", str(now), "--max-slowdown", "2"])
    assert alone.exit_code == 2 and "give --baseline" in alone.output
    shown = runner.invoke(app, ["bench", "--from-results", str(now), "--baseline", str(base)])
    assert shown.exit_code == 0 and "(4.00x)" in shown.output
    judged = runner.invoke(
        app, ["bench", "--from-results", str(now), "--baseline", str(base), "--max-slowdown", "2"]
    )
    assert judged.exit_code == 1 and "4.00x the baseline's" in judged.output


# -- resuming an interrupted run -----------------------------------------------------------------
def test_resume_reuses_finished_seeds_that_train_alike_and_reruns_the_rest(fake_backend, tmp_path):
    cell = tiny_cell()
    first = run_cells([cell], 2, tmp_path, ratio=False, isolate=False)
    (tmp_path / "fake_linear_CartPole-v1_s1" / "result.json").unlink()  # seed 1 was interrupted
    lines: list[str] = []
    again = run_cells(
        [cell.model_copy(update={"min_return": 0.0})],
        2,
        tmp_path,
        ratio=False,
        isolate=False,
        resume=True,
        report=lines.append,
    )
    assert [line.strip() for line in lines if "reused" in line] == [
        f"reused the finished run in {tmp_path / 'fake_linear_CartPole-v1_s0'}"
    ]
    assert again[0].seeds[0] == first[0].seeds[0]  # the very same result
    assert again[0].seeds[1].status == "done" and again[0].passed  # rerun, judged by the new line
    lines.clear()
    run_cells(
        [tiny_cell(budget_steps=200)],
        1,
        tmp_path,
        ratio=False,
        isolate=False,
        resume=True,
        report=lines.append,
    )
    assert not [line for line in lines if "reused" in line]  # trains otherwise: runs again


def test_resume_reuses_a_ratio_only_for_the_same_cell_and_repeats(tmp_path):
    cell = tiny_cell()
    ratio = RatioResult(available=True, env_steps=200, repeats=3, ratio=1.0)
    (tmp_path / "ratio_plan.json").write_text(
        json.dumps({"cell": cell.model_dump(mode="json"), "repeats": 3})
    )
    (tmp_path / "ratio.json").write_text(ratio.model_dump_json())
    assert finished_ratio(cell, 3, tmp_path) == ratio
    assert finished_ratio(cell, 5, tmp_path) is None
    assert finished_ratio(tiny_cell(ratio_steps=400), 3, tmp_path) is None
    (tmp_path / "ratio.json").write_text(ratio.model_copy(update={"error": "killed"}).model_dump_json())
    assert finished_ratio(cell, 3, tmp_path) is None
    assert finished_ratio(cell, 3, tmp_path / "missing") is None


def test_cli_resume_needs_the_runs_dir():
    result = CliRunner().invoke(app, ["bench", "--slice", "ci", "--resume"])
    assert result.exit_code == 2 and "give it as --runs-dir" in " ".join(result.output.split())


def test_every_builtin_cell_has_a_measured_pass_line_below_what_was_measured():
    unmeasured = [c.key for c in CELLS if c.note.startswith(("not measured", "not tuned"))]
    assert unmeasured == []
    for cell in CELLS:
        assert re.search(r"measured 20\d\d-\d\d-\d\d", cell.note), cell.key
        assert cell.min_return <= cell.solve_threshold


def test_minatar_pass_lines_lie_above_what_a_random_policy_scores():
    """A random policy scores about 0.4 per MinAtar Breakout episode: a pass line must need learning."""
    minatar = [c for c in CELLS if c.env == MINATAR]
    assert {c.backend for c in minatar} == set(BUILTIN)
    for cell in minatar:
        assert 1.0 <= cell.min_return <= cell.solve_threshold == ENV_THRESHOLDS[MINATAR], cell.key
        spec = cell.agent_spec(0)
        assert spec.network is None  # polyrl's CNN for images, the same on every backend


def test_images_slice_merges_into_full_and_its_runs_do_not_nest_directories(tmp_path):
    assert covering_slice(["images"]) == "images"
    assert covering_slice(["full", "images"]) == covering_slice(["default", "images"]) == "full"
    assert covering_slice(["ci", "default"]) == "default"
    cell = tiny_cell(env=MINATAR, solve_threshold=10.0, min_return=1.0, slices=["full", "images"])
    assert seed_directory(tmp_path, cell, 2) == tmp_path / "fake_linear_MinAtar-Breakout-v1_s2"


def test_merge_orders_cells_as_the_cells_file_does(tmp_path):
    sb3, rllib = (
        next(c for c in CELLS if c.key == key) for key in ("sb3/ppo/CartPole-v1", "rllib/ppo/CartPole-v1")
    )
    seed = SeedResult(seed=0, status="done", final_return_mean=500.0, best_eval_return_mean=500.0)
    pieces = [_report([CellResult.summarize(cell, [seed])], "x") for cell in (sb3, rllib)]
    merged = merge_reports(pieces, ["a.json", "b.json"], "merge")
    assert [c.cell.key for c in merged.cells] == [c.key for c in CELLS if c.key in (sb3.key, rllib.key)]


def test_cli_json_prints_the_results_document_alone(solved, tmp_path):
    reporting.write_report(solved, tmp_path / "r", latest=False, draw=False)
    [source] = list((tmp_path / "r").glob("*.json"))
    result = CliRunner().invoke(app, ["bench", "--from-results", str(source), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["passed"] is True and len(document["cells"]) == len(solved.cells)
