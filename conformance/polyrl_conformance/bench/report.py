"""Benchmark results as files: JSON (the source of truth), Markdown, a PNG of learning curves,
and the table in the README (between `<!-- bench-table:start -->` and `<!-- bench-table:end -->`).
"""

from __future__ import annotations

import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from polyrl.errors import ConfigurationError
from polyrl.files import write_text_atomically

from polyrl_conformance.bench.records import BenchReport, CellResult, MachineInfo
from polyrl_conformance.bench.zoo import zoo_table

README_START = "<!-- bench-table:start -->"
README_END = "<!-- bench-table:end -->"
LATEST = "latest"


# -- machine -------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def ram_gb() -> float:
    """Physical memory in GB."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return []


def machine_info() -> MachineInfo:
    """CPU, cores, RAM, OS, library versions, the date and the load average now."""
    from polyrl.plugins import installed_names, registry
    from polyrl.versions import environment_versions

    backends = registry().backends()
    libraries = sorted({backends[name].library for name in installed_names(backends)})
    return MachineInfo(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        cpu_model=cpu_model(),
        cores=os.cpu_count() or 1,
        ram_gb=ram_gb(),
        load_average_start=load_average(),
        versions=environment_versions("polyrl", *libraries),
    )


# -- numbers as text -----------------------------------------------------------------------------
NONE = "-"


def _number(value: float | None, digits: int = 1) -> str:
    return NONE if value is None else f"{value:,.{digits}f}"


def _steps(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


def _final(cell: CellResult) -> str:
    if cell.final_return_mean is None:
        return NONE
    if len(cell.seeds) > 1 and cell.final_return_std is not None:
        return f"{cell.final_return_mean:.1f} ± {cell.final_return_std:.1f}"
    return f"{cell.final_return_mean:.1f}"


def _best(cell: CellResult) -> str:
    return _number(cell.best_return_mean)


def _line(cell: CellResult) -> str:
    """The pass/fail line and what it judges."""
    return f"{cell.cell.min_return:g}" + (" (best)" if cell.cell.judge == "best" else "")


def _ratio(cell: CellResult) -> str:
    if cell.ratio is None:
        return NONE
    if not cell.ratio.available:
        return "n/a"
    return "error" if cell.ratio.ratio is None else f"{cell.ratio.ratio:.2f}"


def _solved(cell: CellResult) -> str:
    return f"{cell.solved_seeds}/{len(cell.seeds)}"


def seeds_per_cell(report: BenchReport) -> str:
    """How many seeds the cells have: one number, or the range when merged runs differ."""
    counts = sorted({len(c.seeds) for c in report.cells}) or [report.seeds]
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"


# -- Markdown ------------------------------------------------------------------------------------
def cell_table(report: BenchReport) -> list[str]:
    """The per-cell summary table, as Markdown lines."""
    lines = [
        "| cell | budget (steps) | final eval return | best eval return | min return | solved "
        "| steps to threshold | training s to threshold | env steps/s | polyrl / direct | result |",
        "| --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in report.cells:
        lines.append(
            f"| {c.cell.key} | {c.cell.budget_steps:,} | {_final(c)} | {_best(c)} | {_line(c)} | "
            f"{_solved(c)} (≥ {c.cell.solve_threshold:g}) | {_steps(c.steps_to_threshold)} | "
            f"{_number(c.seconds_to_threshold)} | {_number(c.steps_per_second, 0)} | {_ratio(c)} | "
            f"{'pass' if c.passed else '**FAIL**'} |"
        )
    return lines


def _pair(now: float | None, before: float | None, digits: int = 1) -> str:
    text = f"{_number(now, digits)} / {_number(before, digits)}"
    if now is not None and before:
        text += f" ({now / before:.2f}x)"
    return text


def baseline_table(report: BenchReport) -> list[str]:
    """The cells next to the baseline's, as Markdown lines (none without a baseline)."""
    comparison = report.baseline
    if comparison is None:
        return []
    limit = (
        f"; a cell fails above {comparison.max_slowdown:g}x the baseline's env steps to threshold"
        if comparison.max_slowdown is not None
        else ""
    )
    lines = [
        f"Against the baseline `{comparison.source}` ({comparison.date}){limit}: now / baseline.",
        "",
        "| cell | env steps to threshold | training s to threshold | env steps/s | final eval return |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in comparison.rows:
        lines.append(
            f"| {row.cell} | {_pair(row.steps_to_threshold, row.baseline_steps_to_threshold, 0)} | "
            f"{_pair(row.seconds_to_threshold, row.baseline_seconds_to_threshold)} | "
            f"{_pair(row.steps_per_second, row.baseline_steps_per_second, 0)} | "
            f"{_number(row.final_return_mean)} / {_number(row.baseline_final_return_mean)} |"
        )
    return lines


def markdown(report: BenchReport, plot_name: str | None = None) -> str:
    """The whole report as a Markdown document."""
    m = report.machine
    versions = ", ".join(f"{k} {v}" for k, v in m.versions.items() if v)
    load = lambda xs: " / ".join(f"{x:.2f}" for x in xs) or "n/a"  # noqa: E731
    lines = [
        f"# polyrl bench: {report.slice} slice",
        "",
        f"- date: {m.date}",
        f"- machine: {m.cpu_model}, {m.cores} cores, {m.ram_gb:g} GB RAM, {m.platform} ({m.hostname})",
        f"- load average (1/5/15 min): {load(m.load_average_start)} at the start, "
        f"{load(m.load_average_end)} at the end",
        f"- versions: {versions}",
        f"- command: `{report.command}`",
        *[f"  - merges `{command}`" for command in report.merged_commands],
        f"- seeds per cell: {seeds_per_cell(report)}; stop at the solve threshold: "
        f"{'yes' if report.stop_at_threshold else 'no'}; total {report.total_seconds / 60:.1f} min",
        "",
        "Final eval return: mean (± std over seeds) of the last deterministic evaluation; best: of "
        "the best one. A cell passes when the judged return (final, or best where marked) reaches "
        "its min return. Steps and "
        "training seconds to threshold: when the evaluation first reached the environment's solve "
        "threshold (mean over the seeds that did); training seconds exclude building the agent and "
        "the evaluations. polyrl / direct: wall time through polyrl over the library's own training "
        "loop for the same configuration, measured in the same process (median of repeats; the "
        "CPU ratio, of this process's CPU time, is the steadier one on a shared machine).",
        "",
        *cell_table(report),
        "",
    ]
    if report.baseline is not None:
        lines += ["## Against the baseline", "", *baseline_table(report), ""]
    if report.zoo is not None:
        lines += ["## Against RL Zoo3", "", *zoo_table(report), ""]
    if report.failures:
        lines += ["## Failures", "", *[f"- {message}" for message in report.failures], ""]
    if plot_name:
        lines += ["## Learning curves", "", f"![learning curves]({plot_name})", ""]
    lines += [
        "## Seeds",
        "",
        "| cell | seed | env steps | final eval | steps to threshold | training s to threshold "
        "| wall s to threshold | setup s | training s | training CPU s | eval s | wall s | stop |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in report.cells:
        for s in c.seeds:
            stop = s.stop_reason or (f"failed: {(s.error or '').strip().splitlines()[0]}" if s.error else "")
            lines.append(
                f"| {c.cell.key} | {s.seed} | {s.env_steps:,} | {_number(s.final_return_mean)} | "
                f"{_steps(s.steps_to_threshold)} | {_number(s.seconds_to_threshold)} | "
                f"{_number(s.wall_seconds_to_threshold)} | "
                f"{s.setup_seconds:.1f} | {s.train_seconds:.1f} | {_number(s.train_cpu_seconds)} | "
                f"{s.eval_seconds:.1f} | "
                f"{s.wall_seconds:.1f} | "
                f"{stop.replace('|', '/')} |"
            )
    ratios = [c for c in report.cells if c.ratio is not None and c.ratio.ratio is not None]
    if ratios:
        lines += [
            "",
            "## polyrl vs the library called directly",
            "",
            "| cell | env steps per run | polyrl s (median) | direct s (median) | ratio "
            "| polyrl CPU s | direct CPU s | CPU ratio | runs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in ratios:
            r = c.ratio
            assert r is not None
            lines.append(
                f"| {c.cell.key} | {r.env_steps:,} | {_number(r.polyrl_median, 2)} | "
                f"{_number(r.direct_median, 2)} | {_number(r.ratio, 3)} | "
                f"{_number(r.polyrl_cpu_median, 2)} | {_number(r.direct_cpu_median, 2)} | "
                f"{_number(r.cpu_ratio, 3)} | {r.repeats} |"
            )
    return "\n".join(lines) + "\n"


# -- learning curves -----------------------------------------------------------------------------
def _band(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 200) -> tuple[np.ndarray, ...]:
    """Mean and std over the curves on a shared grid; each point uses the curves that reach it."""
    curves = [(xs, ys) for xs, ys in curves if len(xs)]
    if not curves:
        return np.empty(0), np.empty(0), np.empty(0)
    low = min(xs[0] for xs, _ in curves)
    high = max(xs[-1] for xs, _ in curves)
    grid = np.linspace(low, high, points) if high > low else np.asarray([high])
    means, stds = [], []
    for x in grid:
        values = [np.interp(x, xs, ys) for xs, ys in curves if xs[0] <= x <= xs[-1]]
        means.append(np.mean(values) if values else np.nan)
        stds.append(np.std(values) if values else np.nan)
    return grid, np.asarray(means), np.asarray(stds)


def plot(report: BenchReport, path: Path) -> Path | None:
    """One panel per cell: training and evaluation return over env steps (mean and band over seeds)."""
    if not report.cells:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(report.cells)
    columns = min(4, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, cell in zip(axes.flat, report.cells, strict=False):
        for key, label, width in (("return_mean", "training", 1.0), ("eval_return_mean", "evaluation", 2.0)):
            curves = []
            for seed in cell.seeds:
                points = [(p.env_steps, getattr(p, key)) for p in seed.curve if getattr(p, key) is not None]
                if points:
                    xs, ys = zip(*points, strict=True)
                    curves.append((np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)))
            grid, mean, std = _band(curves)
            if len(grid):
                line = axis.plot(grid, mean, label=label, linewidth=width)[0]
                axis.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axis.axhline(cell.cell.solve_threshold, color="green", linestyle="--", linewidth=0.8, label="solved")
        if cell.cell.min_return != cell.cell.solve_threshold:
            axis.axhline(cell.cell.min_return, color="red", linestyle=":", linewidth=0.8, label="min return")
        verdict = "" if cell.passed else " (FAIL)"
        axis.set_title(f"{cell.cell.key} (n={len(cell.seeds)}){verdict}", fontsize=9)
        axis.set_xlabel("env steps", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="best")
    figure.suptitle(f"polyrl bench, {report.slice} slice, {report.machine.date}", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.2 * rows)))  # room for the suptitle
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


# -- files ---------------------------------------------------------------------------------------
def results_stem(report: BenchReport) -> str:
    """The file name (without suffix) of a report: DATE-SLICE, e.g. 2026-11-25-ci."""
    return f"{report.machine.date[:10]}-{report.slice}"


def write_report(report: BenchReport, out: Path, latest: bool = True, draw: bool = True) -> list[Path]:
    """Write DATE-SLICE.json/.md/.png into `out` (and latest.json/.md); return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    stem = results_stem(report)
    written = []
    picture = plot(report, out / f"{stem}.png") if draw else None
    document = report.model_dump_json(indent=2) + "\n"
    text = markdown(report, picture.name if picture else None)
    for name in [stem, LATEST] if latest else [stem]:
        write_text_atomically(out / f"{name}.json", document)
        write_text_atomically(out / f"{name}.md", text)
        written += [out / f"{name}.json", out / f"{name}.md"]
    if picture:
        written.append(picture)
    return written


def read_report(path: Path) -> BenchReport:
    """A results JSON file written by `polyrl bench`."""
    if not path.is_file():
        raise ConfigurationError(
            f"{path} does not exist; run `polyrl bench` first or give a results .json file"
        )
    return BenchReport.model_validate_json(path.read_text(encoding="utf-8"))


# -- README --------------------------------------------------------------------------------------
def readme_table(report: BenchReport, source: str) -> str:
    """The README's benchmark block: a short table of every cell and where the numbers come from."""
    m = report.machine
    lines = [
        "| backend | algorithm | env | budget | seeds | final eval return | best eval return | pass line "
        "| steps to threshold | training s to threshold | env steps/s | polyrl / direct |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in report.cells:
        threshold = f"{_steps(c.steps_to_threshold)} (≥ {c.cell.solve_threshold:g})"
        if c.solved_seeds == 0:
            threshold = f"not reached (≥ {c.cell.solve_threshold:g})"
        lines.append(
            f"| {c.cell.backend} | {c.cell.algorithm} | {c.cell.env} | {c.cell.budget_steps:,} | "
            f"{len(c.seeds)} | {_final(c)} | {_best(c)} | {_line(c)} | "
            f"{threshold} | {_number(c.seconds_to_threshold)} | {_number(c.steps_per_second, 0)} | "
            f"{_ratio(c)} |"
        )
    load = " / ".join(f"{x:.1f}" for x in m.load_average_start) or "n/a"
    verdict = (
        "Every cell passed its threshold." if report.passed else "Failing: " + "; ".join(report.failures)
    )
    lines += [
        "",
        "Returns are deterministic evaluations (10 episodes; SAC 5): the last one, and the best of the run. "
        "Pass line: the cell's threshold on the final return (on the best where marked). Training seconds "
        "exclude building the agent and the evaluations.",
        "",
        f"Generated from `{source}` ({report.slice} slice, {seeds_per_cell(report)} seed(s) per cell"
        f"{', stopped at the threshold' if report.stop_at_threshold else ''}): {m.date}, {m.cpu_model}, "
        f"{m.cores} cores, load average {load} at the start. "
        f"{verdict}",
    ]
    return "\n".join(lines)


def update_readme(readme: Path, report: BenchReport, source: str) -> bool:
    """Replace the block between the bench-table markers of `readme`; True when the file changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ConfigurationError(
            f"{readme} has no benchmark block: add the lines {README_START} and {README_END} where "
            "the table should go"
        )
    new = f"{text[: start + len(README_START)]}\n{readme_table(report, source)}\n{text[end:]}"
    if new == text:
        return False
    write_text_atomically(readme, new)
    return True
