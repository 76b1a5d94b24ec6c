"""The suite's results: collected per check and case, written as JSON and Markdown, shown as a matrix.

Every check outcome is one of:
- "pass" / "fail" (a failure in a check's setup, e.g. the agent did not build, is a fail);
- "unsupported": the backend declares it does not meet the check (`BackendInfo.unsupported`,
  or `deterministic=False` for the seeding check) — reported with the declared reason;
- "skipped": skipped for another reason (reported with it).
A matrix cell (backend x algorithm, check) aggregates the check's cases over environments:
fail if any failed, else pass if any passed, else unsupported/skipped; "-" when none ran.
"""

from __future__ import annotations

import json
import platform
import string
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

REPORT_FORMAT = "polyrl-conformance"
REPORT_VERSION = 1
JSON_NAME = "conformance.json"
MARKDOWN_NAME = "conformance.md"
UNSUPPORTED_PREFIX = "unsupported: "

#: Every check, in the matrix's column order, with what it is parametrized over:
#: "env" = every fitting environment, "mismatch" = every environment that does not fit,
#: "algorithm" = the algorithm's first fitting environment.
CHECKS: tuple[tuple[str, str], ...] = (
    ("construct", "env"),
    ("space_mismatch", "mismatch"),
    ("act_in_space", "env"),
    ("act_shape_dtype", "env"),
    ("act_deterministic", "env"),
    ("callback_order", "algorithm"),
    ("train_steps", "algorithm"),
    ("metrics", "algorithm"),
    ("stop_flag", "algorithm"),
    ("learning_rate", "algorithm"),
    ("play_hooks", "algorithm"),
    ("play_episodes", "algorithm"),
    ("play_max_steps", "algorithm"),
    ("evaluate", "algorithm"),
    ("save_load_actions", "algorithm"),
    ("manifest", "algorithm"),
    ("resume", "algorithm"),
    ("load_wrong_backend", "algorithm"),
    ("truncated_checkpoint", "algorithm"),
    ("seeding", "algorithm"),
    ("effective_hyperparameters", "algorithm"),
    ("lr_reaches_optimizer", "algorithm"),
    ("iteration_budget", "algorithm"),
    ("losses_reported", "algorithm"),
    ("seeding_interleaved", "algorithm"),
    ("n_envs", "algorithm"),
    ("replay_buffer", "algorithm"),
    ("resume_equivalence", "algorithm"),
    ("resume_exact", "algorithm"),
    ("image_observations", "algorithm"),
    ("discrete_observations", "algorithm"),
    ("dict_observations", "algorithm"),
    ("device", "algorithm"),
    ("normalize", "algorithm"),
    ("schedules", "algorithm"),
    ("experience_collect", "algorithm"),
    ("experience_add", "algorithm"),
)
CHECK_NAMES = tuple(name for name, _ in CHECKS)

_SEVERITY = {"fail": 4, "pass": 3, "unsupported": 2, "skipped": 1}


def aggregate(outcomes: Iterable[str]) -> str:
    """One cell from the outcomes of a check's cases (see the module docstring)."""
    found = set(outcomes)
    if not found:
        return "-"
    return max(found, key=lambda o: _SEVERITY.get(o, 0))


def build_report(
    results: list[dict[str, Any]],
    backends: list[dict[str, Any]],
    rows: list[tuple[str, str, str]],
    rules: dict[str, str],
    warnings: list[str],
    exit_status: int | None,
) -> dict[str, Any]:
    """The JSON document of a run (see README "Report format")."""
    from polyrl.versions import polyrl_version

    # Every check is a column, run or not, so matrices of different selections line up.
    checks = [*CHECK_NAMES, *sorted({r["check"] for r in results} - set(CHECK_NAMES))]
    matrix: list[dict[str, Any]] = []
    for backend, algorithm, env in rows:
        mine = [r for r in results if r["backend"] == backend and r["algorithm"] == algorithm]
        cells = {check: aggregate(r["outcome"] for r in mine if r["check"] == check) for check in checks}
        matrix.append(
            {
                "backend": backend,
                "algorithm": algorithm,
                "algorithm_env": env,
                "cells": cells,
                "seconds": round(sum(r["seconds"] for r in mine), 3),
            }
        )
    summary = {
        o: sum(1 for r in results if r["outcome"] == o) for o in ("pass", "fail", "unsupported", "skipped")
    }
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "polyrl_version": polyrl_version(),
        "python": platform.python_version(),
        "exit_status": exit_status,
        "passed": summary["fail"] == 0 and exit_status in (0, None),
        "summary": summary,
        "checks": [{"name": c, "scope": dict(CHECKS).get(c, "?"), "rule": rules.get(c, "")} for c in checks],
        "backends": backends,
        "matrix": matrix,
        "results": results,
        "warnings": warnings,
    }


def write_report(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write conformance.json and conformance.md into `directory`; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / JSON_NAME
    markdown_path = directory / MARKDOWN_NAME
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    markdown_path.write_text(to_markdown(report))
    return json_path, markdown_path


_MARKDOWN_CELL = {"pass": "pass", "fail": "**FAIL**", "unsupported": "unsupported", "skipped": "skipped"}


def _first_line(text: str, limit: int = 300) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: header, matrix, failures, declared-unsupported reasons, rules."""
    checks = [c["name"] for c in report["checks"]]
    verdict = "PASSED" if report["passed"] else "FAILED"
    s = report["summary"]
    lines = [
        "# polyrl conformance report",
        "",
        f"{verdict}: {s['pass']} passed, {s['fail']} failed, {s['unsupported']} declared unsupported, "
        f"{s['skipped']} skipped (polyrl {report['polyrl_version']}, Python {report['python']}, "
        f"{report['created_at']}).",
        "",
        "| backend | library | deterministic | declared unsupported |",
        "| --- | --- | --- | --- |",
    ]
    for b in report["backends"]:
        unsupported = ", ".join(f"`{k}`" for k in b["unsupported"]) or "none"
        lines.append(
            f"| {b['name']} | {b['library']} {b['library_version'] or '?'} | "
            f"{'yes' if b['deterministic'] else 'no (declared)'} | {unsupported} |"
        )
    lines += [
        "",
        "Rows: backend x algorithm (algorithm-level checks ran on the env in brackets); "
        "columns: checks; env-level cells aggregate every fitting env (details in conformance.json).",
        "",
        "| backend / algorithm | " + " | ".join(checks) + " | seconds |",
        "| --- | " + " | ".join("---" for _ in checks) + " | ---: |",
    ]
    for row in report["matrix"]:
        cells = [_MARKDOWN_CELL.get(row["cells"][c], row["cells"][c]) for c in checks]
        lines.append(
            f"| {row['backend']} / {row['algorithm']} ({row['algorithm_env']}) | "
            + " | ".join(cells)
            + f" | {row['seconds']:.1f} |"
        )
    failures = [r for r in report["results"] if r["outcome"] == "fail"]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [
            f"- `{r['check']}` {r['backend']}/{r['algorithm']} on {r['env']}: {_first_line(r['reason'])}"
            for r in failures
        ]
    declared = sorted(
        {(r["backend"], r["check"], r["reason"]) for r in report["results"] if r["outcome"] == "unsupported"}
    )
    if declared:
        lines += ["", "## Declared unsupported", ""]
        lines += [f"- {backend}: `{check}` — {reason}" for backend, check, reason in declared]
    skipped = sorted(
        {(r["backend"], r["check"], r["reason"]) for r in report["results"] if r["outcome"] == "skipped"}
    )
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {backend}: `{check}` — {_first_line(reason)}" for backend, check, reason in skipped]
    if report["warnings"]:
        lines += ["", "## Warnings", ""]
        lines += [f"- {w}" for w in report["warnings"]]
    lines += ["", "## Rules", ""]
    lines += [f"- `{c['name']}` ({c['scope']}): {c['rule']}" for c in report["checks"]]
    return "\n".join(lines) + "\n"


_RICH_CELL = {
    "pass": "[green]✓[/]",
    "fail": "[red bold]✗[/]",
    "unsupported": "[yellow]u[/]",
    "skipped": "[dim]s[/]",
    "-": "[dim]-[/]",
}


def column_label(index: int) -> str:
    """The one-letter column heading of the index-th check (a, ..., z, A, ..., Z, then aa, ab, ...)."""
    letters = string.ascii_lowercase + string.ascii_uppercase
    if index < len(letters):
        return letters[index]
    index -= len(letters)
    return letters[index // 26] + letters[index % 26]


def verdict_line(report: dict[str, Any]) -> str:
    """The one line that says whether the suite passed (printed above the matrix, never wrapped)."""
    return f"polyrl conformance: {'PASSED' if report['passed'] else 'FAILED'}"


def render_matrix(report: dict[str, Any]) -> Table:
    """The matrix as a rich Table: rows backend x algorithm, columns checks.

    Columns are headed by one letter (a, ..., z, A, ..., Z) and drawn without separators, one
    character per check, so 50 checks fit 80 characters; `render_details` prints the legend.
    """
    from rich.table import Table

    checks = [c["name"] for c in report["checks"]]
    table = Table(box=None, padding=0, pad_edge=False, header_style="bold")
    table.add_column("backend / algorithm ", no_wrap=True)
    for index in range(len(checks)):
        table.add_column(column_label(index), justify="center", no_wrap=True)
    table.add_column(" sec", justify="right", no_wrap=True)
    for row in report["matrix"]:
        table.add_row(
            f"{row['backend']} / {row['algorithm']} ",
            *[_RICH_CELL.get(row["cells"][c], row["cells"][c]) for c in checks],
            f"{row['seconds']:.0f}",
        )
    return table


def render_details(report: dict[str, Any]) -> list[str]:
    """Plain lines for what the matrix cannot show: the legend, failures, declared reasons, warnings."""
    checks = [c["name"] for c in report["checks"]]
    s = report["summary"]
    lines = [
        f"{s['pass']} passed, {s['fail']} failed, {s['unsupported']} declared unsupported, "
        f"{s['skipped']} skipped",
        "cells: ✓ pass  ✗ fail  u declared unsupported  s skipped  - not run",
        "checks: " + ", ".join(f"{column_label(i)} {name}" for i, name in enumerate(checks)),
    ]
    for r in report["results"]:
        if r["outcome"] == "fail":
            lines.append(
                f"FAIL {r['check']} [{r['backend']}/{r['algorithm']}/{r['env']}]: {_first_line(r['reason'])}"
            )
    declared = sorted(
        {(r["backend"], r["check"], r["reason"]) for r in report["results"] if r["outcome"] == "unsupported"}
    )
    lines += [f"unsupported {check} [{backend}]: {reason}" for backend, check, reason in declared]
    lines += [f"warning: {w}" for w in report["warnings"]]
    return lines
