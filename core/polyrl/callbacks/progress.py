"""ProgressBar: env steps, iteration, return mean and ETA while training, on a terminal only."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Literal

from polyrl.callbacks.base import Callback
from polyrl.errors import ConfigurationError

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult


def _interactive(stream: Any) -> bool:
    """A live bar only on a terminal, and never in CI logs (CI sets the CI variable)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("CI")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


class ProgressBar(Callback):
    """A live progress bar of the run: env steps done / planned, iteration, return mean, ETA.

    The total comes from the TrainConfig (`total_steps`, or `iterations` times the backend's
    iteration size; a `time_limit`-only run shows no total). `enabled=None` shows the bar only
    when the stream is a terminal and the CI variable is unset, so logs of batch jobs stay
    clean; `True`/`False` force it. `style` picks rich (a polyrl dependency) or tqdm. `stream`
    defaults to stderr; for rich, `console` may be a ready `rich.console.Console`.
    """

    def __init__(
        self,
        enabled: bool | None = None,
        style: Literal["rich", "tqdm"] = "rich",
        stream: Any = None,
        console: Any = None,
    ) -> None:
        if style not in ("rich", "tqdm"):
            raise ConfigurationError(f"ProgressBar style must be 'rich' or 'tqdm', got {style!r}")
        self.enabled = enabled
        self.style = style
        self.stream = stream
        self.console = console
        self.active = False
        self._bar: Any = None
        self._task: Any = None
        self._start_steps = 0
        self._iteration_steps: int | None = None

    def _total(self, context: TrainContext) -> int | None:
        config = context.config
        if config.total_steps is not None:
            return config.total_steps
        if config.iterations is not None:
            if self._iteration_steps is None:
                self._iteration_steps = context.agent.effective_hyperparameters().iteration_steps
            return config.iterations * self._iteration_steps
        return None

    def on_train_begin(self, context: TrainContext) -> None:
        self._close()  # a bar left open by a run that raised
        self._iteration_steps = None
        stream = self.stream if self.stream is not None else sys.stderr
        if self.console is not None and self.enabled is None:
            self.active = self.console.is_terminal and not os.environ.get("CI")
        else:
            self.active = _interactive(stream) if self.enabled is None else bool(self.enabled)
        if not self.active:
            return
        self._start_steps = context.env_steps
        total = self._total(context)
        label = f"{context.agent.spec.backend}/{context.agent.spec.algorithm}"
        if self.style == "tqdm":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=label, unit="step", file=stream, dynamic_ncols=True)
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = self.console or Console(file=stream, force_terminal=self.enabled or None)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps  iteration {task.fields[iteration]}  return {task.fields[ret]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, iteration=context.iteration, ret="-")

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        if self._bar is None:
            return
        done = record.env_steps - self._start_steps
        if self.style == "tqdm":
            self._bar.update(done - self._bar.n)
            self._bar.set_postfix(iteration=record.iteration, ret=_number(record.return_mean), refresh=False)
            return
        total = self._total(context)  # callbacks may extend the run
        self._bar.update(
            self._task,
            completed=done,
            total=total,
            iteration=record.iteration,
            ret=_number(record.return_mean),
        )

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        self._close()

    def _close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is None:
            return
        if self.style == "tqdm":
            bar.close()
        else:
            bar.stop()

    def __repr__(self) -> str:
        return f"ProgressBar(style={self.style!r}, enabled={self.enabled})"
