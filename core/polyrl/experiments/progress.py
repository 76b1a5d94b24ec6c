"""A live table of a grid's runs: queued, running, done or failed, with their latest return."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from polyrl.cli import render
from polyrl.experiments.plan import PROGRESS_FILE, RunPlan, RunStatus
from polyrl.redact import redact_uri

_STYLE = {
    "queued": "dim",
    "running": "yellow",
    "done": "green",
    "failed": "red",
    "skipped": "cyan",
    "interrupted": "magenta",
    "pruned": "blue",
}


def latest_row(directory: Path) -> dict[str, str]:
    """The last row of a run's progress.csv ({} if none yet)."""
    path = directory / PROGRESS_FILE
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


class GridProgress:
    """Tracks every run's state; draws a rich live table on a terminal, plain lines otherwise."""

    def __init__(self, directories: list[Path], skipped: set[Path], console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.directories = directories
        plans = {d: RunPlan.read(d) for d in directories}
        self.names = {d: f"{plan.name} s{plan.variant.get('seed', '-')}" for d, plan in plans.items()}
        self.state: dict[Path, str] = {d: "skipped" if d in skipped else "queued" for d in directories}
        self.final: dict[Path, RunStatus] = {}
        self.live_mode = self.console.is_terminal and not os.environ.get("CI")
        self._live: Live | None = None

    def __enter__(self) -> GridProgress:
        if self.live_mode:
            self._live = Live(self.table(), console=self.console, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.table())
            self._live.__exit__(*exc)
            self._live = None

    def tick(self) -> None:
        """Refresh the running runs' state from their status files."""
        for directory, state in self.state.items():
            if state == "queued" and (directory / "status.json").is_file():
                self.state[directory] = "running"
        if self._live is not None:
            self._live.update(self.table())

    def finished(self, status: RunStatus) -> None:
        """Record a run that ended."""
        directory = Path(status.directory)
        self.state[directory] = status.status
        self.final[directory] = status
        if self._live is None:
            if status.error:
                detail = redact_uri(next(iter(status.error.splitlines()), ""))
            elif status.eval_return_mean is not None:
                detail = f"eval return {status.eval_return_mean:.1f}"
            else:
                detail = f"{status.env_steps} env steps, no evaluation"
            self.console.print(  # one unwrapped line; names and errors are not markup
                f"[{_STYLE[status.status]}]{status.status}[/] {escape(self.names[directory])}: "
                f"{escape(detail)}",
                soft_wrap=True,
            )
        self.tick()

    def reread(self, directories: list[Path]) -> None:
        """Take the state of these runs from their status files (after an interrupt)."""
        for directory in directories:
            status = RunStatus.read(directory)
            if status is not None and status.status != "running":
                self.state[directory] = status.status
                self.final[directory] = status
        self.tick()

    def table(self) -> Table:
        """The grid's runs as a table."""
        counts = {s: list(self.state.values()).count(s) for s in _STYLE}
        table = render.table("grid: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        render.add_columns(table, "run", "state", "env steps", "return (latest)", "eval return")
        for directory in self.directories:
            state = self.state[directory]
            row = latest_row(directory) if state in ("running", "done") else {}
            final = self.final.get(directory)
            evaluation = final.eval_return_mean if final and final.eval_return_mean is not None else None
            table.add_row(
                escape(self.names[directory]),
                f"[{_STYLE[state]}]{state}[/]",
                row.get("env_steps", ""),
                row.get("return_mean", ""),
                "" if evaluation is None else f"{evaluation:.1f}",
            )
        return table
