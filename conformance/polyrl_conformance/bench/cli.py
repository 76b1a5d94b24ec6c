"""The `polyrl bench` command (the conformance plugin adds it to the `polyrl` app).

Defined at module level and registered by `polyrl_conformance.plugin`; importing this module
imports typer only: the bench's machinery loads when the command runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from polyrl.cli.guard import guarded

if TYPE_CHECKING:
    from polyrl_conformance.bench.records import BenchReport

EXIT_FAILED = 1
#: `--baseline zoo`: RL Zoo3's configurations (`bench.zoo`), not a results file.
ZOO = "zoo"


class SliceName(StrEnum):
    """The benchmark slices (nested: ci is part of default, default of full; images is part of full)."""

    ci = "ci"
    default = "default"
    full = "full"
    images = "images"


def _command(options: dict[str, Any]) -> str:
    """The command line that reproduces this run (canonical spelling)."""
    parts = ["polyrl", "bench", "--slice", options["slice"]]
    for flag in ("backend", "algorithm", "env"):
        for value in options[flag] or []:
            parts += [f"--{flag}", value]
    parts += ["--seeds", str(options["seeds"])]
    if options["first_seed"]:
        parts += ["--first-seed", str(options["first_seed"])]
    parts.append("--stop-at-threshold" if options["stop_at_threshold"] else "--no-stop-at-threshold")
    if not options["ratio"]:
        parts.append("--no-ratio")
    if options.get("zoo"):
        parts += ["--baseline", "zoo"]
    return " ".join(parts)


@dataclass(frozen=True)
class _Request:
    """What `polyrl bench` was asked to produce (the options that choose and run the cells)."""

    slice_name: SliceName
    backend: list[str] | None
    algorithm: list[str] | None
    env: list[str] | None
    seeds: int | None
    first_seed: int
    resume: bool
    runs_dir: Path | None
    stop_at_threshold: bool | None
    ratio: bool
    ratio_repeats: int
    timeout: float | None
    from_results: Path | None
    merge: list[Path] | None
    list_cells: bool
    say: Callable[[str], None]
    zoo: bool = False  # --baseline zoo: RL Zoo3's configuration beside each cell that has one


def _sayer(as_json: bool) -> Callable[[str], None]:
    """Print a progress line: to stdout, or with --json to stderr (stdout holds the document alone)."""
    from polyrl.cli import render

    def say(line: str) -> None:
        if as_json:
            render.errors.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            render.say(line)

    return say


def _fail(message: str) -> Callable[[], None]:
    def raise_it() -> None:
        raise ValueError(message)

    return raise_it


def _read_results(request: _Request) -> BenchReport | None:
    """The report of --merge or --from-results (nothing trained); None when neither is given."""
    from polyrl_conformance.bench import report as reporting
    from polyrl_conformance.bench.records import CellResult

    if request.from_results is not None and request.merge:
        raise ValueError("--from-results and --merge both read results; give one of them")
    if request.merge:
        from polyrl_conformance.bench.merge import merge_reports

        command = " ".join(["polyrl bench", *(f"--merge {path}" for path in request.merge)])
        reports = [reporting.read_report(p) for p in request.merge]
        return merge_reports(reports, [str(p) for p in request.merge], command)
    if request.from_results is not None:
        loaded = reporting.read_report(request.from_results)
        # Re-checked against the thresholds stored with the cells: a results file stands alone.
        cells = [CellResult.summarize(c.cell, c.seeds, c.ratio, c.zoo) for c in loaded.cells]
        return loaded.model_copy(update={"cells": cells}).with_verdict()
    return None


def _produce(request: _Request) -> BenchReport | None:
    """Read or train the report the request asks for (None for --list)."""
    from polyrl_conformance.bench import report as reporting
    from polyrl_conformance.bench.cells import select_cells
    from polyrl_conformance.bench.records import BenchReport
    from polyrl_conformance.bench.runner import run_cells

    read = _read_results(request)
    if read is not None:
        return read
    slice_name = request.slice_name
    cells = select_cells(slice_name.value, request.backend, request.algorithm, request.env)
    if not cells:
        raise ValueError(
            f"no cells in the {slice_name.value} slice for backends {request.backend or 'installed'}, "
            f"algorithms {request.algorithm or 'any'}, envs {request.env or 'any'}"
        )
    if request.resume and request.runs_dir is None:
        raise ValueError("--resume reuses an earlier run's directory: give it as --runs-dir")
    count = request.seeds or (1 if slice_name is SliceName.ci else 3)
    # The ci and default cells follow the RL Zoo3 comparison's protocol, which stops at the
    # threshold; full and images judge the final return of the whole budget.
    stopping = slice_name in (SliceName.ci, SliceName.default)
    stop = stopping if request.stop_at_threshold is None else request.stop_at_threshold
    zoo = None
    if request.zoo:
        from polyrl_conformance.bench.zoo import zoo_configs

        zoo = zoo_configs(cells)  # before anything trains: a missing rl-zoo3 or bad entry fails now
    if request.list_cells:
        for cell in cells:
            typer.echo(
                f"{cell.key}: {cell.budget_steps:,} steps, min return {cell.min_return:g}"
                f"{' on the best evaluation' if cell.judge == 'best' else ''} "
                f"(solved at {cell.solve_threshold:g}); {cell.note}"
            )
            if zoo is not None and cell.key in zoo:
                config = zoo[cell.key]
                typer.echo(f"  RL Zoo3 beside it: {config.missing or config.source}")
        return None
    started = time.perf_counter()
    machine = reporting.machine_info()
    directory = request.runs_dir or Path("runs") / "bench" / (
        f"{datetime.now().strftime('%Y%m%d_%H%M%S')}-{slice_name.value}"
    )
    request.say(
        f"polyrl bench: {len(cells)} cell(s) x {count} seed(s), {slice_name.value} slice, runs in {directory}"
    )
    results = run_cells(
        cells,
        count,
        directory,
        stop_at_threshold=stop,
        ratio=request.ratio,
        ratio_repeats=request.ratio_repeats,
        timeout=request.timeout,
        first_seed=request.first_seed,
        resume=request.resume,
        report=request.say,
        zoo=zoo,
    )
    machine = machine.model_copy(update={"load_average_end": reporting.load_average()})
    options = {
        "slice": slice_name.value,
        "backend": request.backend,
        "algorithm": request.algorithm,
        "env": request.env,
        "seeds": count,
        "first_seed": request.first_seed,
        "stop_at_threshold": stop,
        "ratio": request.ratio,
        "zoo": request.zoo,
    }
    return BenchReport(
        slice=slice_name.value,
        command=_command(options),
        seeds=count,
        stop_at_threshold=stop,
        machine=machine,
        total_seconds=time.perf_counter() - started,
        cells=results,
    ).with_verdict()


def _reference(baseline: Path | None, max_slowdown: float | None, trains: bool) -> BenchReport | None:
    """The --baseline results file, read before training so a missing one fails now; None for zoo.

    With `--baseline zoo` and a run that trains, rl-zoo3 must be installed: checked now too.
    """
    from polyrl_conformance.bench import report as reporting

    if max_slowdown is not None and baseline is None:
        raise ValueError("--max-slowdown compares with a baseline: give --baseline RESULTS.json too")
    if baseline is None:
        return None
    if str(baseline) == ZOO:
        from polyrl_conformance.bench.zoo import zoo_version

        if trains:
            zoo_version()  # without rl-zoo3: a typed error saying how to install it
        return None
    return reporting.read_report(baseline)


def _against(
    document: BenchReport, baseline: Path | None, reference: BenchReport | None, max_slowdown: float | None
) -> BenchReport:
    """The document compared with its baseline: a results file's cells, or RL Zoo3's runs."""
    if baseline is None:
        return document
    if reference is None:  # --baseline zoo
        from polyrl_conformance.bench.zoo import compare_zoo

        return compare_zoo(document, max_slowdown)
    from polyrl_conformance.bench.baseline import compare

    return compare(document, reference, baseline, max_slowdown)


BENCH_HELP = (
    "Train every backend x algorithm x env cell of a slice with several seeds (each in a fresh "
    "process), and report per cell the final deterministic evaluation return, steps and training "
    "seconds to the env's solve threshold, env steps per second and polyrl's time over the library "
    "called directly. Writes OUT/DATE-SLICE.json/.md/.png and OUT/latest.json/.md; exits with status 1 "
    "naming every cell below its threshold. Slices: ci (PPO on CartPole-v1 per backend), default "
    "(+ DQN on CartPole-v1, PPO and SAC on Pendulum-v1), full (+ Acrobot-v1, MountainCar-v0, "
    "MountainCarContinuous-v0, A2C, TD3, and the images cells), images (PPO and DQN on MinAtar "
    "Breakout's image observations, through each backend's CNN). --baseline zoo trains RL Zoo3's "
    "configuration of each sb3 cell through SB3 directly beside it and reports polyrl / zoo ratios."
)


def bench(
    slice_name: Annotated[SliceName, typer.Option("--slice", help="Which cells to run.")] = SliceName.default,
    full: Annotated[bool, typer.Option("--full", help="The full matrix: the same as --slice full.")] = False,
    backend: Annotated[
        list[str] | None, typer.Option(help="Backend to run (repeatable; default: every installed one).")
    ] = None,
    algorithm: Annotated[list[str] | None, typer.Option(help="Only these algorithms (repeatable).")] = None,
    env: Annotated[list[str] | None, typer.Option(help="Only these environments (repeatable).")] = None,
    seeds: Annotated[
        int | None, typer.Option(min=1, help="Seeds per cell, 0..N-1 (default: 1 for ci, 3 otherwise).")
    ] = None,
    first_seed: Annotated[
        int, typer.Option(min=0, help="The first seed: runs seeds K..K+N-1 (to add seeds to a run).")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Where the results files go.")] = Path("bench-results"),
    resume: Annotated[
        bool,
        typer.Option(
            help="Reuse what an interrupted run left in --runs-dir: finished seeds and ratios of cells "
            "that still train alike; run the rest.",
        ),
    ] = False,
    runs_dir: Annotated[
        Path | None,
        typer.Option(help="Where the seeds' run directories go (default runs/bench/DATE_TIME-SLICE)."),
    ] = None,
    stop_at_threshold: Annotated[
        bool | None,
        typer.Option(
            "--stop-at-threshold/--no-stop-at-threshold",
            help="Stop a seed once its evaluation reaches the env's threshold (default: on for the ci "
            "and default slices).",
        ),
    ] = None,
    ratio: Annotated[
        bool,
        typer.Option("--ratio/--no-ratio", help="Measure polyrl's time over the library's per cell."),
    ] = True,
    ratio_repeats: Annotated[int, typer.Option(min=1, help="Runs per side of the ratio (median).")] = 3,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds of training per seed before it is stopped.")
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest/--no-latest", help="Also write OUT/latest.json and latest.md.")
    ] = True,
    from_results: Annotated[
        Path | None,
        typer.Option(help="Train nothing: read this results .json, re-check and re-render it."),
    ] = None,
    merge: Annotated[
        list[Path] | None,
        typer.Option(
            help="Train nothing: merge these results .json files of one machine type (other seeds or "
            "cells of the same matrix) into one report, re-judged, written to OUT (repeatable).",
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Compare each cell with the same cell of this results .json (e.g. a committed "
            "OUT/latest.json): steps and seconds to threshold, env steps/s, return. Or `zoo`: train RL "
            "Zoo3's configuration of each sb3 cell through SB3 directly beside it, same seeds and "
            "protocol, and report steps and seconds to threshold with polyrl / zoo ratios (needs "
            "`pip install rl-zoo3`).",
        ),
    ] = None,
    max_slowdown: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="With --baseline: fail a cell that needs more than this many times the baseline's env "
            "steps to reach the solve threshold, or no longer reaches it (with zoo: or reaches it on "
            "fewer seeds than RL Zoo3's configuration).",
        ),
    ] = None,
    update_readme: Annotated[
        Path | None,
        typer.Option(
            "--update-readme",
            "--readme",
            help="Rewrite the table between the <!-- bench-table:start --> and <!-- bench-table:end --> "
            "lines of this Markdown file (a project's README.md) from the results.",
        ),
    ] = None,
    list_cells: Annotated[bool, typer.Option("--list", help="Print the selected cells and exit.")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the results document as JSON (progress goes to stderr)."),
    ] = False,
) -> None:
    from polyrl.cli import render

    from polyrl_conformance.bench import report as reporting
    from polyrl_conformance.bench.zoo import zoo_table

    say = _sayer(as_json)
    if full:
        if slice_name not in (SliceName.default, SliceName.full):
            guarded(_fail(f"--full is --slice full; it contradicts --slice {slice_name.value}"))
        slice_name = SliceName.full
    zoo = baseline is not None and str(baseline) == ZOO
    request = _Request(
        slice_name, backend, algorithm, env, seeds, first_seed, resume, runs_dir, stop_at_threshold,
        ratio, ratio_repeats, timeout, from_results, merge, list_cells, say, zoo,
    )  # fmt: skip

    def body() -> BenchReport | None:
        reference = _reference(baseline, max_slowdown, trains=from_results is None and not merge)
        document = _produce(request)
        if document is None:
            return None
        document = _against(document, baseline, reference, max_slowdown)
        if from_results is None:  # re-checking a results file writes no new results
            for path in reporting.write_report(document, out, latest=latest):
                say(f"wrote {path}")
        return document

    document = guarded(body)
    if document is None:
        return
    if update_readme is not None:
        source = from_results or (
            out / f"{reporting.LATEST if latest else reporting.results_stem(document)}.json"
        )
        changed = guarded(lambda: reporting.update_readme(update_readme, document, str(source)))
        say(f"{update_readme}: benchmark table {'updated' if changed else 'already up to date'}")
    if as_json:
        typer.echo(document.model_dump_json(indent=2))
    else:
        sections = [reporting.cell_table(document), reporting.baseline_table(document), zoo_table(document)]
        render.say("\n\n".join("\n".join(lines) for lines in sections if lines))
    if not document.passed:
        for message in document.failures:
            render.errors.print(message, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
