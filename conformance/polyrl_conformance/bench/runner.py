"""Run benchmark cells: each seed in a fresh process, one after the other, so timings stay clean.

    python -m polyrl_conformance.bench.runner RUN_DIR      # one seed: reads plan.json, writes result.json

A seed's run directory holds plan.json (cell, seed), config.json (spec, TrainConfig, versions,
effective hyperparameters) and progress.csv (every iteration, with the evaluations), as a
`polyrl grid` run does, so `polyrl plot` and `polyrl compare` read it too, and result.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from polyrl.errors import ConfigurationError
from polyrl.files import write_text_atomically

from polyrl_conformance.bench.cells import BenchCell
from polyrl_conformance.bench.overhead import RATIO_FILE, RATIO_PLAN_FILE, measure_ratio
from polyrl_conformance.bench.protocol import SeedProtocol, ThresholdTracker
from polyrl_conformance.bench.records import (
    CellResult,
    RatioResult,
    SeedPlan,
    SeedResult,
    ZooArm,
    ZooConfig,
)

if TYPE_CHECKING:
    from polyrl.agent import Agent

PLAN_FILE = "plan.json"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.csv"
LOG_FILE = "output.log"
#: Seconds a worker gets past its time limit (final evaluation, saving) before it is killed.
KILL_GRACE_SECONDS = 120.0

Reporter = Callable[[str], None]


def _preset_of(agent: Agent) -> tuple[str | None, str | None]:
    """The preset the agent trains with and its source (None where this polyrl has no presets)."""
    preset = getattr(agent.spec, "preset", None)
    source = None
    try:
        effective = agent.effective_hyperparameters()
    except Exception:  # the preset labels the result; failing to read it must not fail the seed
        effective = None
    if effective is not None:
        preset = getattr(effective, "preset", None) or preset
        source = getattr(effective, "preset_source", None)
    return (None if preset is None else str(preset)), (None if source is None else str(source))


def run_seed(plan: SeedPlan, directory: Path, time_limit: float | None = None) -> SeedResult:
    """Train one seed of a cell in this process and write result.json; never raises for a bad run."""
    if plan.arm == "zoo":
        return run_zoo_seed(plan, directory, time_limit)
    directory.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    cell = plan.cell
    result = SeedResult(seed=plan.seed, status="failed", directory=str(directory))
    try:
        from polyrl.agent import Agent
        from polyrl.callbacks.loggers import CSVLogger, RunConfigLogger
        from polyrl.config import TrainConfig

        with Agent(cell.agent_spec(plan.seed)) as agent:
            setup = time.perf_counter() - began
            preset, source = _preset_of(agent)
            tracker = ThresholdTracker(cell, plan.stop_at_threshold, began)
            config = TrainConfig(total_steps=cell.budget_steps, time_limit=time_limit)
            callbacks = [
                RunConfigLogger(directory / CONFIG_FILE),
                tracker,
                CSVLogger(directory / PROGRESS_FILE),
            ]
            trained = agent.train(config, callbacks=callbacks)
            tracker.protocol.finish(tracker.player(agent, cell.eval_episodes))
        result = tracker.protocol.result(result, trained.env_steps, setup, trained.stop_reason)
        result = result.model_copy(
            update={"iterations": trained.iterations, "preset": preset, "preset_source": source}
        )
    except Exception as exc:  # a failing seed is reported as such; the other cells go on
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    result.wall_seconds = time.perf_counter() - began
    write_text_atomically(directory / RESULT_FILE, result.model_dump_json(indent=2))
    return result


def run_zoo_seed(plan: SeedPlan, directory: Path, time_limit: float | None = None) -> SeedResult:
    """Train RL Zoo3's configuration of the plan's cell for one seed (`polyrl_zoo_training`)."""
    directory.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    result = SeedResult(seed=plan.seed, status="failed", directory=str(directory))
    try:
        from polyrl.plugins import registry

        protocol = SeedProtocol(plan.cell, plan.stop_at_threshold, began, time_limit)
        hook = getattr(registry().manager.hook, "polyrl_zoo_training", None)
        trained = None if hook is None else hook(cell=plan.cell, seed=plan.seed, protocol=protocol)
        if trained is None:
            raise ConfigurationError(
                f"no installed plugin runs RL Zoo3 for {plan.cell.backend} cells (polyrl_zoo_training)"
            )
        result = protocol.result(result, trained.env_steps, trained.setup_seconds, trained.stop_reason)
    except Exception as exc:  # reported in the zoo's row; the run goes on
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    result.wall_seconds = time.perf_counter() - began
    write_text_atomically(directory / RESULT_FILE, result.model_dump_json(indent=2))
    return result


def _run_process(module: str, directory: Path, timeout: float | None) -> int | None:
    """Run `python -m module DIR` in a new process group; kill the group if it overruns."""
    with (directory / LOG_FILE).open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a timeout also ends the helpers it started
        )
        try:
            return process.wait(timeout=None if timeout is None else timeout + KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


def _log_tail(directory: Path, lines: int = 15) -> str:
    path = directory / LOG_FILE
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def write_plan(plan: SeedPlan, directory: Path, timeout: float | None) -> None:
    """plan.json of a seed about to run (its worker reads it), and no stale result.json."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {"plan": plan.model_dump(mode="json"), "time_limit": timeout}
    write_text_atomically(directory / PLAN_FILE, json.dumps(document))
    (directory / RESULT_FILE).unlink(missing_ok=True)


def finished_seed(plan: SeedPlan, directory: Path) -> SeedResult | None:
    """The result of a seed that already ran to the end in `directory` with a plan training alike."""
    try:
        stored = SeedPlan.model_validate(json.loads((directory / PLAN_FILE).read_text())["plan"])
        result = SeedResult.model_validate_json((directory / RESULT_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    alike = (stored.seed, stored.stop_at_threshold, stored.arm) == (
        plan.seed,
        plan.stop_at_threshold,
        plan.arm,
    )
    if not alike or not stored.cell.trains_like(plan.cell) or result.status != "done":
        return None
    return result


def finished_ratio(cell: BenchCell, repeats: int, directory: Path) -> RatioResult | None:
    """The ratio already measured in `directory` for a cell training alike, with as many repeats."""
    try:
        stored = json.loads((directory / RATIO_PLAN_FILE).read_text())
        result = RatioResult.model_validate_json((directory / RATIO_FILE).read_text())
        alike = BenchCell.model_validate(stored["cell"]).trains_like(cell) and stored["repeats"] == repeats
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return result if alike and result.error is None else None


def run_seed_isolated(plan: SeedPlan, directory: Path, timeout: float | None = None) -> SeedResult:
    """Run one seed in a fresh Python process (no torch, library runtime or env state shared)."""
    write_plan(plan, directory, timeout)
    began = time.perf_counter()
    code = _run_process("polyrl_conformance.bench.runner", directory, timeout)
    if (directory / RESULT_FILE).is_file():
        return SeedResult.model_validate_json((directory / RESULT_FILE).read_text())
    why = "killed after its time limit" if code is None else f"exited with status {code}"
    return SeedResult(
        seed=plan.seed,
        status="failed",
        directory=str(directory),
        error=f"the worker process {why}; last output:\n{_log_tail(directory)}",
        wall_seconds=time.perf_counter() - began,
    )


def measure_ratio_isolated(
    cell: BenchCell, directory: Path, repeats: int, timeout: float | None = None
) -> RatioResult:
    """The polyrl-vs-direct ratio of a cell, measured in a fresh process."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {"cell": cell.model_dump(mode="json"), "repeats": repeats}
    write_text_atomically(directory / RATIO_PLAN_FILE, json.dumps(document))
    (directory / RATIO_FILE).unlink(missing_ok=True)
    code = _run_process("polyrl_conformance.bench.overhead", directory, timeout)
    if (directory / RATIO_FILE).is_file():
        return RatioResult.model_validate_json((directory / RATIO_FILE).read_text())
    why = "killed after its time limit" if code is None else f"exited with status {code}"
    return RatioResult(available=True, error=f"the ratio process {why}; last output:\n{_log_tail(directory)}")


def cell_stem(cell: BenchCell) -> str:
    """The start of a cell's run directories' names: BACKEND_ALGO_ENV, the env's "/" as "-".

    A namespaced id (MinAtar/Breakout-v1) would otherwise nest a directory per namespace.
    """
    return f"{cell.backend}_{cell.algorithm}_{cell.env.replace('/', '-')}"


def seed_directory(runs_dir: Path, cell: BenchCell, seed: int, arm: str = "polyrl") -> Path:
    """Where one seed of a cell runs (RL Zoo3's run of it: with a _zoo suffix)."""
    return runs_dir / f"{cell_stem(cell)}_s{seed}{'' if arm == 'polyrl' else '_' + arm}"


def describe_seed(cell: BenchCell, result: SeedResult) -> str:
    """One line about a finished seed, for progress output."""
    head = f"{cell.key} seed {result.seed}:"
    if result.status == "failed":
        return f"{head} FAILED: {(result.error or '').strip().splitlines()[0] if result.error else '?'}"
    solved = (
        f"reached {cell.solve_threshold:g} at {result.steps_to_threshold:,} steps in "
        f"{result.seconds_to_threshold:.1f} s of training"
        if result.solved and result.seconds_to_threshold is not None
        else f"did not reach {cell.solve_threshold:g}"
    )
    final = "n/a" if result.final_return_mean is None else f"{result.final_return_mean:.1f}"
    return (
        f"{head} {solved}; final eval {final} after {result.env_steps:,} steps "
        f"({result.train_seconds:.1f} s training, {result.wall_seconds:.1f} s wall)"
    )


def _one_seed(
    plan: SeedPlan, directory: Path, isolate: bool, timeout: float | None, resume: bool, report: Reporter
) -> SeedResult:
    """A seed's result: reused from `directory` (resume), or run there (in a fresh process if isolated)."""
    reused = finished_seed(plan, directory) if resume else None
    if reused is not None:
        report(f"  reused the finished run in {directory}")
        return reused
    if isolate:
        return run_seed_isolated(plan, directory, timeout)
    write_plan(plan, directory, timeout)
    return run_seed(plan, directory, timeout)


def run_cells(
    cells: list[BenchCell],
    seeds: int,
    runs_dir: Path,
    stop_at_threshold: bool = False,
    ratio: bool = True,
    ratio_repeats: int = 3,
    isolate: bool = True,
    timeout: float | None = None,
    report: Reporter = print,
    first_seed: int = 0,
    resume: bool = False,
    zoo: dict[str, ZooConfig] | None = None,
) -> list[CellResult]:
    """Run seeds first_seed..first_seed+seeds-1 of every cell, one at a time, then each cell's ratio.

    `zoo` (cell key -> RL Zoo3's configuration, `polyrl bench --baseline zoo`): after a cell's
    seeds, the same seeds of that configuration, through the library directly (`run_zoo_seed`),
    in BACKEND_ALGO_ENV_sSEED_zoo directories.

    `resume=True` reuses what an interrupted run left in `runs_dir`: seeds that finished with a
    plan training alike, and ratios measured for such a cell with as many repeats.

    `isolate=False` runs the seeds in this process (for tests with backends registered only
    here); the ratio then runs in this process too.
    """
    results = []
    zoo = zoo or {}
    total = len(cells) * seeds
    done = 0
    for cell in cells:
        seed_results = []
        numbers = range(first_seed, first_seed + seeds)
        for seed in numbers:
            plan = SeedPlan(cell=cell, seed=seed, stop_at_threshold=stop_at_threshold)
            done += 1
            report(f"[{done}/{total}] {cell.key} seed {seed} (budget {cell.budget_steps:,} steps) ...")
            outcome = _one_seed(plan, seed_directory(runs_dir, cell, seed), isolate, timeout, resume, report)
            seed_results.append(outcome)
            report("  " + describe_seed(cell, outcome))
        arm = None
        if cell.key in zoo:
            config = zoo[cell.key]
            zoo_seeds = []
            if config.missing is not None:
                report(f"  {cell.key}: no RL Zoo3 run: {config.missing}")
            for seed in numbers if config.missing is None else ():
                plan = SeedPlan(cell=cell, seed=seed, stop_at_threshold=stop_at_threshold, arm="zoo")
                report(f"  {cell.key} seed {seed}: RL Zoo3's configuration ({config.source}) ...")
                directory = seed_directory(runs_dir, cell, seed, arm="zoo")
                outcome = _one_seed(plan, directory, isolate, timeout, resume, report)
                zoo_seeds.append(outcome)
                report("  RL Zoo3 " + describe_seed(cell, outcome))
            arm = ZooArm.summarize(config, zoo_seeds)
        ratio_result = None
        if ratio:
            report(f"  {cell.key}: polyrl vs direct, {cell.ratio_steps:,} steps x {ratio_repeats} ...")
            ratio_dir = runs_dir / f"{cell_stem(cell)}_ratio"
            ratio_result = finished_ratio(cell, ratio_repeats, ratio_dir) if resume else None
            if ratio_result is not None:
                report(f"  reused the ratio measured in {ratio_dir}")
            elif isolate:
                ratio_result = measure_ratio_isolated(cell, ratio_dir, ratio_repeats, timeout)
            else:
                ratio_result = measure_ratio(cell, ratio_repeats)
            report("  " + describe_ratio(cell, ratio_result))
        result = CellResult.summarize(cell, seed_results, ratio_result, arm)
        results.append(result)
        report(f"  {cell.key}: {'passed' if result.passed else 'FAILED: ' + str(result.message)}")
    return results


def describe_ratio(cell: BenchCell, ratio: RatioResult) -> str:
    """One line about a ratio measurement."""
    if not ratio.available:
        return f"{cell.key}: no direct-library implementation (polyrl_direct_training) for this backend"
    if ratio.error or ratio.ratio is None:
        return f"{cell.key}: ratio not measured: {(ratio.error or '').strip().splitlines()[0:1]}"
    return (
        f"{cell.key}: polyrl {ratio.polyrl_median:.2f} s, direct {ratio.direct_median:.2f} s, "
        f"ratio {ratio.ratio:.3f} (median of {ratio.repeats})"
    )


def main(argv: list[str]) -> int:
    """Worker entry point: run the seed planned in argv[0]."""
    if len(argv) != 1:
        print("usage: python -m polyrl_conformance.bench.runner RUN_DIR", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    document = json.loads((directory / PLAN_FILE).read_text())
    result = run_seed(SeedPlan.model_validate(document["plan"]), directory, document.get("time_limit"))
    if result.error:
        print(result.error, file=sys.stderr)
    return 0 if result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
