"""Run the suite from Python or the CLI: pytest in a subprocess, then read its JSON report.

A subprocess keeps the caller's process clean (no backend library imported into it, no pytest
state) and runs exactly what a plugin author's CI runs: `python -m pytest --pyargs
polyrl_conformance ...` in the current environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polyrl_conformance.report import JSON_NAME, MARKDOWN_NAME, render_details, render_matrix

__all__ = ["load_report", "pytest_command", "render_details", "render_matrix", "run_suite"]


def pytest_command(
    backends: Sequence[str] | None,
    algorithms: Sequence[str] | None,
    report_dir: Path,
    pytest_args: Sequence[str] = (),
    envs: Sequence[str] | None = None,
    threads: int = 1,
    print_matrix: bool = True,
) -> list[str]:
    """The command line run_suite runs."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "polyrl_conformance",
        "-p",
        "no:cacheprovider",
        f"--polyrl-report={report_dir}",
        f"--polyrl-threads={threads}",
    ]
    for option, values in (
        ("--polyrl-backend", backends),
        ("--polyrl-algorithm", algorithms),
        ("--polyrl-env", envs),
    ):
        for value in values or ():
            command.append(f"{option}={value}")
    if not print_matrix:
        command.append("--polyrl-no-matrix")
    command += list(pytest_args)
    return command


def run_suite(
    backends: list[str] | None,
    algorithms: list[str] | None,
    report_dir: Path,
    pytest_args: list[str] | None = None,
    envs: list[str] | None = None,
    threads: int = 1,
    print_matrix: bool = True,
) -> int:
    """Run the suite on the selected backends (None: every installed one); return pytest's exit code.

    The report lands in `report_dir` (conformance.json and conformance.md; files of a previous
    run there are removed first, so a failed start never shows stale results). With `capture`,
    pytest's output is collected instead of streamed (it is then in `run_suite.last_output`).
    """
    report_dir = Path(report_dir)
    for name in (JSON_NAME, MARKDOWN_NAME):
        (report_dir / name).unlink(missing_ok=True)
    command = pytest_command(backends, algorithms, report_dir, pytest_args or (), envs, threads, print_matrix)
    return subprocess.run(command, check=False).returncode


def load_report(report_dir: Path) -> dict[str, Any] | None:
    """The JSON report in `report_dir`, or None if the run wrote none (e.g. it could not start)."""
    path = Path(report_dir) / JSON_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())
