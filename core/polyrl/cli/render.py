"""What the CLI prints: training progress, play results, manifests and plugin tables (rich)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from polyrl.callbacks.base import Callback
from polyrl.redact import redact_uri

if TYPE_CHECKING:
    from pydantic import ValidationError

    from polyrl.callbacks.context import RunContext
    from polyrl.manifest import CheckpointManifest
    from polyrl.records import IterationRecord, PlayResult, TrainResult

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def say(text: str) -> None:
    """Print one message line to stdout as given: never wrapped, never read as markup.

    Paths and error texts hold brackets (`pip install 'polyrl[sb3]'`) and can be longer than the
    terminal; a wrapped or markup-eaten line cannot be copied or grepped. Only secrets change: a
    URI's password or token is printed as `***` (polyrl.redact).
    """
    console.print(redact_uri(text), markup=False, highlight=False, soft_wrap=True)


def complain(text: str, label: str | None = None, style: str = "red bold") -> None:
    """Print a message line to stderr, unwrapped; only `label` is styled, `text` is kept verbatim.

    Verbatim but for secrets: error texts may quote a URI with its password (polyrl.redact).
    """
    prefix = f"[{style}]{escape(label)}[/]: " if label else ""
    errors.print(prefix + escape(redact_uri(text)), markup=True, highlight=False, soft_wrap=True)


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as the CLI says it: one `field.path: message` clause per problem."""
    clauses = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        clauses.append(f"{path}: {error['msg']}" if path else error["msg"])
    return f"{exc.title}: " + "; ".join(clauses)


def table(title: str | None = None, **options: Any) -> Table:
    """A table whose cells fold at narrow widths instead of cutting names with an ellipsis."""
    return Table(title=title, title_justify="left", **options)


def add_columns(target: Table, *names: str, justify: Any = "left") -> None:
    """Columns that fold long values onto more lines: identifying names are never cut."""
    for name in names:
        target.add_column(name, overflow="fold", justify=justify)


def interactive() -> bool:
    """Live progress bars only on a terminal and never in CI logs."""
    return console.is_terminal and not os.environ.get("CI")


def _number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


class PlainProgress(Callback):
    """Training progress for logs (not a terminal, or CI): at most one plain line a second.

    On a terminal the CLI uses polyrl.callbacks.ProgressBar instead.
    """

    def __init__(self) -> None:
        self._last_line = 0.0

    def on_train_begin(self, context: RunContext) -> None:
        self._start_steps = context.env_steps
        self._total = getattr(context.config, "total_steps", None)

    def on_iteration_end(self, context: RunContext, record: IterationRecord) -> None:
        done = record.env_steps - self._start_steps
        now = time.monotonic()
        if now - self._last_line >= 1.0 or (self._total is not None and done >= self._total):
            self._last_line = now
            total = f"/{self._total:,}" if self._total else ""
            say(
                f"steps {done:,}{total}  iter {record.iteration}  return {_number(record.return_mean)}  "
                f"{record.steps_per_second:,.0f} steps/s"
            )


def progress_callback() -> Callback:
    """A live bar on a terminal, plain lines in logs."""
    if interactive():
        from polyrl.callbacks.progress import ProgressBar

        return ProgressBar(enabled=True, console=console)
    return PlainProgress()


def train_summary(result: TrainResult) -> Table:
    """One table of how a train() call went."""
    table = Table(show_header=False)
    add_columns(table, "field", "value")
    last = result.last
    rows = {
        "stopped because": result.stop_reason,
        "iterations (lifetime)": str(result.iterations),
        "env steps (this run / lifetime)": f"{result.run_env_steps:,} / {result.env_steps:,}",
        "wall seconds": f"{result.wall_seconds:.1f}",
        "last return mean": _number(last.return_mean if last else None),
    }
    for key, value in rows.items():
        table.add_row(key, escape(value))
    return table


def titled(title: str, table: Table) -> None:
    """Print `title` as one unwrapped line (it may hold a path), then the table below it."""
    say(title)
    console.print(table)


def play_table(result: PlayResult) -> Table:
    """Per-episode returns and lengths, with the summary as the caption."""
    table = Table()
    add_columns(table, "episode", "return", "length", "ended by", justify="right")
    for episode in result.episodes:
        ended = "terminated" if episode.terminated else "truncated" if episode.truncated else "stopped"
        table.add_row(str(episode.index), f"{episode.episode_return:.2f}", str(episode.length), ended)
    table.caption = (
        f"return mean {_number(result.return_mean, 2)} ± {_number(result.return_std, 2)} "
        f"(min {_number(result.return_min, 2)}, max {_number(result.return_max, 2)}), "
        f"{'deterministic' if result.deterministic else 'stochastic'} actions"
    )
    return table


def manifest_table(manifest: CheckpointManifest) -> Table:
    """What a checkpoint holds."""
    table = Table(show_header=False)
    add_columns(table, "field", "value")
    spec = manifest.spec
    rows = {
        "backend": f"{manifest.backend} ({manifest.library} {manifest.library_version})",
        "algorithm": spec.algorithm,
        "env": spec.env if isinstance(spec.env, str) else spec.env.factory,
        "seed": str(spec.seed),
        "env steps": f"{manifest.env_steps:,}",
        "iterations / episodes": f"{manifest.iterations} / {manifest.episodes}",
        "learning rate": f"{manifest.learning_rate:g}",
        "written": f"{manifest.created_at:%Y-%m-%d %H:%M:%S %Z} by polyrl {manifest.polyrl_version}",
        "files": ", ".join(f"{name} ({entry.size:,} B)" for name, entry in manifest.files.items()),
    }
    for key, value in rows.items():
        table.add_row(key, escape(value))
    for name, datum in manifest.metadata.items():
        table.add_row(f"metadata.{escape(name)}", escape(str(datum)))
    return table


def plugins_table(rows: list[dict[str, Any]]) -> Table:
    """Backends, their algorithms, install state and library versions.

    A row with a "status" is an entry point that failed to load ("failed") or registered nothing
    ("empty"); its reason is printed in full below the table by the caller (one unwrapped line).
    """
    table = Table()
    add_columns(table, "backend", "installed", "library", "algorithms (action spaces)", "plugin")
    for row in rows:
        status = row.get("status")
        if status is not None:
            state = "[red]failed to load[/]" if status == "failed" else "[yellow]registered nothing[/]"
            table.add_row(escape(row["name"]), state, "-", "(see below)", escape(row["plugin"]))
            continue
        installed = (
            f"[green]yes[/] {escape(str(row['version']))}"
            if row["installed"]
            else f"[red]no[/] pip install {escape(row['install'])}"
        )
        algorithms = "\n".join(f"{name} ({', '.join(spaces)})" for name, spaces in row["algorithms"].items())
        table.add_row(
            escape(row["name"]), installed, escape(row["library"]), escape(algorithms), escape(row["plugin"])
        )
    return table
