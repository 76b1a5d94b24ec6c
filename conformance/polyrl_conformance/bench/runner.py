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

from polyrl.callbacks.base import Callback
from polyrl.files import write_text_atomically

from polyrl_conformance.bench.cells import BenchCell
from polyrl_conformance.bench.overhead import RATIO_FILE, RATIO_PLAN_FILE, measure_ratio
from polyrl_conformance.bench.records import CellResult, CurvePoint, RatioResult, SeedPlan, SeedResult

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.callbacks.context import RunContext
    from polyrl.records import IterationRecord

PLAN_FILE = "plan.json"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.csv"
LOG_FILE = "output.log"
#: Seconds a worker gets past its time limit (final evaluation, saving) before it is killed.
KILL_GRACE_SECONDS = 120.0
#: Training points a seed's result keeps at most (besides its evaluations).
CURVE_POINTS = 500

Reporter = Callable[[str], None]


class ThresholdTracker(Callback):
    """Evaluates on an env-step cadence and records when the solve threshold is first reached.

    The training clock is the sum of the iterations' own seconds (the driver's work only), so
    the evaluations, which are the benchmark's and not the training's, never count; the CPU
    clock sums this process's CPU time from each iteration's start to its end (steadier than
    wall time on a machine shared with other jobs). Evaluation
    numbers go into the iteration's record under eval_* (so progress.csv has them) before later
    callbacks see it.
    """

    def __init__(self, cell: BenchCell, stop_at_threshold: bool, started: float) -> None:
        self.cell = cell
        self.stop_at_threshold = stop_at_threshold
        self.started = started
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self._iteration_cpu = 0.0
        self.eval_seconds = 0.0
        self.next_eval = cell.eval_every_steps
        self.curve: list[CurvePoint] = []
        self.solved_at: tuple[int, float, float] | None = None

    def evaluate(self, agent: Agent, point: CurvePoint) -> None:
        """Play the cell's deterministic evaluation episodes and note the result on `point`."""
        began = time.perf_counter()
        result = agent.evaluate(episodes=self.cell.eval_episodes)
        self.eval_seconds += time.perf_counter() - began
        point.eval_return_mean = result.return_mean
        point.eval_return_std = result.return_std
        reached = result.return_mean is not None and result.return_mean >= self.cell.solve_threshold
        if self.solved_at is None and reached:
            self.solved_at = (point.env_steps, point.train_seconds, time.perf_counter() - self.started)

    def on_iteration_begin(self, context: RunContext, iteration: int) -> None:
        self._iteration_cpu = time.process_time()

    def on_iteration_end(self, context: RunContext, record: IterationRecord) -> None:
        self.train_seconds += record.iteration_seconds
        self.train_cpu_seconds += time.process_time() - self._iteration_cpu
        point = CurvePoint(
            env_steps=record.env_steps, train_seconds=self.train_seconds, return_mean=record.return_mean
        )
        self.curve.append(point)
        if record.env_steps < self.next_eval:
            return
        # Once solved, a coarser cadence suffices for the curve (a solved CartPole evaluation
        # plays 5,000 steps): a twentieth of the budget.
        every = self.cell.eval_every_steps
        if self.solved_at is not None:
            every = max(every, self.cell.budget_steps // 20)
        while self.next_eval <= record.env_steps:
            self.next_eval += every
        self.evaluate(context.agent, point)
        record.metrics["eval_return_mean"] = float(point.eval_return_mean or 0.0)
        record.metrics["eval_return_std"] = float(point.eval_return_std or 0.0)
        if self.solved_at is not None and self.stop_at_threshold:
            context.stop(f"solve threshold {self.cell.solve_threshold:g} reached")


def thin_curve(curve: list[CurvePoint], points: int = CURVE_POINTS) -> list[CurvePoint]:
    """At most about `points` points: every evaluation, the last point, and evenly spaced others.

    Keeps result files small when iterations are tiny (an A2C of 5 env steps per iteration);
    progress.csv still has every iteration.
    """
    if len(curve) <= points:
        return list(curve)
    stride = -(-len(curve) // points)
    return [
        p
        for i, p in enumerate(curve)
        if i % stride == 0 or p.eval_return_mean is not None or i == len(curve) - 1
    ]


def run_seed(plan: SeedPlan, directory: Path, time_limit: float | None = None) -> SeedResult:
    """Train one seed of a cell in this process and write result.json; never raises for a bad run."""
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
            tracker = ThresholdTracker(cell, plan.stop_at_threshold, began)
            config = TrainConfig(total_steps=cell.budget_steps, time_limit=time_limit)
            callbacks = [
                RunConfigLogger(directory / CONFIG_FILE),
                tracker,
                CSVLogger(directory / PROGRESS_FILE),
            ]
            trained = agent.train(config, callbacks=callbacks)
            if tracker.curve and tracker.curve[-1].eval_return_mean is None:
                tracker.evaluate(agent, tracker.curve[-1])  # the final evaluation, if the cadence missed it
        evaluated = [p.eval_return_mean for p in tracker.curve if p.eval_return_mean is not None]
        final = next((p for p in reversed(tracker.curve) if p.eval_return_mean is not None), None)
        result = result.model_copy(
            update={
                "status": "done",
                "env_steps": trained.env_steps,
                "iterations": trained.iterations,
                "setup_seconds": setup,
                "train_seconds": tracker.train_seconds,
                "train_cpu_seconds": tracker.train_cpu_seconds,
                "eval_seconds": tracker.eval_seconds,
                "steps_per_second": trained.env_steps / tracker.train_seconds
                if tracker.train_seconds
                else None,
                "stop_reason": trained.stop_reason,
                "final_return_mean": final.eval_return_mean if final else None,
                "final_return_std": final.eval_return_std if final else None,
                "best_eval_return_mean": max(evaluated) if evaluated else None,
                "solved": tracker.solved_at is not None,
                "steps_to_threshold": tracker.solved_at[0] if tracker.solved_at else None,
                "seconds_to_threshold": tracker.solved_at[1] if tracker.solved_at else None,
                "wall_seconds_to_threshold": tracker.solved_at[2] if tracker.solved_at else None,
                "curve": thin_curve(tracker.curve),
            }
        )
    except Exception as exc:  # a failing seed is reported as such; the other cells go on
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
    alike = stored.seed == plan.seed and stored.stop_at_threshold == plan.stop_at_threshold
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
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomically(
        directory / PLAN_FILE, json.dumps({"plan": plan.model_dump(mode="json"), "time_limit": timeout})
    )
    (directory / RESULT_FILE).unlink(missing_ok=True)
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


def seed_directory(runs_dir: Path, cell: BenchCell, seed: int) -> Path:
    """Where one seed of a cell runs."""
    return runs_dir / f"{cell_stem(cell)}_s{seed}"


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
) -> list[CellResult]:
    """Run seeds first_seed..first_seed+seeds-1 of every cell, one at a time, then each cell's ratio.

    `resume=True` reuses what an interrupted run left in `runs_dir`: seeds that finished with a
    plan training alike, and ratios measured for such a cell with as many repeats.

    `isolate=False` runs the seeds in this process (for tests with backends registered only
    here); the ratio then runs in this process too.
    """
    results = []
    total = len(cells) * seeds
    done = 0
    for cell in cells:
        seed_results = []
        for seed in range(first_seed, first_seed + seeds):
            plan = SeedPlan(cell=cell, seed=seed, stop_at_threshold=stop_at_threshold)
            directory = seed_directory(runs_dir, cell, seed)
            done += 1
            report(f"[{done}/{total}] {cell.key} seed {seed} (budget {cell.budget_steps:,} steps) ...")
            reused = finished_seed(plan, directory) if resume else None
            if reused is not None:
                report(f"  reused the finished run in {directory}")
                outcome = reused
            elif isolate:
                outcome = run_seed_isolated(plan, directory, timeout)
            else:
                write_plan(plan, directory, timeout)
                outcome = run_seed(plan, directory, timeout)
            seed_results.append(outcome)
            report("  " + describe_seed(cell, outcome))
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
        result = CellResult.summarize(cell, seed_results, ratio_result)
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
