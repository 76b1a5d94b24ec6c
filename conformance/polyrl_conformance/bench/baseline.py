"""A run against a baseline results file: is any backend slower to learn than it was?

`polyrl bench --baseline FILE` puts each cell's env steps and training seconds to the solve
threshold, env steps per second and final return next to the baseline's (the committed
results, typically), so a regression in speed is visible in every report. `--max-slowdown X`
also fails the run when a cell needs more than X times the baseline's env steps to reach the
threshold, or no longer reaches it where the baseline did. Env steps, not seconds, are judged:
they do not depend on how loaded the machine is.
"""

from __future__ import annotations

from pathlib import Path

from polyrl_conformance.bench.records import BaselineComparison, BaselineRow, BenchReport, CellResult


def _row(now: CellResult, before: CellResult) -> BaselineRow:
    return BaselineRow(
        cell=now.cell.key,
        steps_to_threshold=now.steps_to_threshold,
        baseline_steps_to_threshold=before.steps_to_threshold,
        seconds_to_threshold=now.seconds_to_threshold,
        baseline_seconds_to_threshold=before.seconds_to_threshold,
        steps_per_second=now.steps_per_second,
        baseline_steps_per_second=before.steps_per_second,
        final_return_mean=now.final_return_mean,
        baseline_final_return_mean=before.final_return_mean,
    )


def _failure(row: BaselineRow, max_slowdown: float) -> str | None:
    if row.baseline_steps_to_threshold is None:
        return None  # the baseline never reached the threshold: nothing to be slower than
    if row.steps_to_threshold is None:
        return (
            f"cell {row.cell}: did not reach the solve threshold; the baseline did at "
            f"{row.baseline_steps_to_threshold:,.0f} env steps"
        )
    slowdown = row.slowdown
    if slowdown is not None and slowdown > max_slowdown:
        return (
            f"cell {row.cell}: {row.steps_to_threshold:,.0f} env steps to the solve threshold, "
            f"{slowdown:.2f}x the baseline's {row.baseline_steps_to_threshold:,.0f} "
            f"(allowed {max_slowdown:g}x)"
        )
    return None


def compare(
    report: BenchReport, baseline: BenchReport, source: Path, max_slowdown: float | None
) -> BenchReport:
    """`report` with its cells compared to the same cells of `baseline` (cells it lacks are left out)."""
    before = {c.cell.key: c for c in baseline.cells}
    rows = [_row(c, before[c.cell.key]) for c in report.cells if c.cell.key in before]
    failures = []
    if max_slowdown is not None:
        failures = [message for row in rows if (message := _failure(row, max_slowdown)) is not None]
    comparison = BaselineComparison(
        source=str(source),
        date=baseline.machine.date,
        max_slowdown=max_slowdown,
        rows=rows,
        failures=failures,
    )
    return report.model_copy(update={"baseline": comparison}).with_verdict()
