"""`polyrl conformance`: run the suite and print the result matrix.

The conformance plugin (`polyrl_conformance.plugin`) adds `conformance` to the `polyrl` app; this
module imports only typer at import time (pytest, rich tables and the backends load when the
command runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def conformance(
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend", "-b", help="Backend to check (repeatable or comma-separated); default: all."
        ),
    ] = None,
    algorithm: Annotated[
        list[str] | None,
        typer.Option("--algorithm", "-a", help="Only these algorithms (repeatable or comma-separated)."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="Only these suite environments, e.g. CartPole-v1 (repeatable)."),
    ] = None,
    report_dir: Annotated[
        Path, typer.Option("--report-dir", "-o", help="Where conformance.json and conformance.md go.")
    ] = Path("conformance-report"),
    threads: Annotated[
        int, typer.Option("--threads", help="Math-kernel threads during the suite (0: library defaults).")
    ] = 1,
    pytest_args: Annotated[
        list[str] | None,
        typer.Argument(help="Extra pytest arguments, after `--` (e.g. -- -x -k ppo).", show_default=False),
    ] = None,
) -> None:
    """Run the conformance suite against installed backends and print the matrix.

    Rows are backend x algorithm, columns the checks; cells pass, fail or declared unsupported.
    The exit status is pytest's: 0 when every check passed or was declared unsupported.
    """
    from rich.console import Console

    from polyrl_conformance.report import verdict_line
    from polyrl_conformance.runner import load_report, render_details, render_matrix, run_suite

    console = Console(highlight=False)
    code = run_suite(
        backend, algorithm, report_dir, list(pytest_args or []), envs=env, threads=threads, print_matrix=False
    )
    report = load_report(report_dir)
    if report is None or not report["results"]:
        message = f"no check ran (pytest exit status {code}); see pytest's output above"
        console.print(message, style="red", markup=False, soft_wrap=True)
        raise typer.Exit(code or 1)
    console.print(verdict_line(report), markup=False, soft_wrap=True)
    console.print(render_matrix(report))
    for line in render_details(report):
        console.print(line, markup=False, soft_wrap=True)
    console.print(
        f"report: {report_dir / 'conformance.md'} and {report_dir / 'conformance.json'}",
        markup=False,
        soft_wrap=True,
    )
    raise typer.Exit(code)
