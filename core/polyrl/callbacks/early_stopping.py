"""EarlyStopping: end training when a metric stops improving or reaches a target."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from polyrl.callbacks.base import Callback
from polyrl.callbacks.monitor import Mode, Monitor
from polyrl.errors import ConfigurationError

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult


class EarlyStopping(Callback):
    """Stop training when `monitor` has not improved for `patience` iterations, or reached `target`.

    - `patience` counts iterations that have a value for the metric (iterations without an
      evaluation or without finished episodes do not count); None: stop on `target` only.
    - `min_delta`: an improvement must beat the best by more than this.
    - `target`: stop as soon as the metric is at or beyond it (>= when maximising).
    - `restore_best`: when the run ends, put the agent back in its state at the best iteration
      (weights, optimizer and counters, through an atomic checkpoint in a temporary directory).

    Stops through the run's stop flag (`context.stop`), so the stop reason lands in
    `TrainResult.stop_reason`. `stopped_iteration`, `best_value` and `best_iteration` tell what
    happened.
    """

    def __init__(
        self,
        monitor: str = "return_mean",
        patience: int | None = 10,
        min_delta: float = 0.0,
        mode: Mode = "auto",
        target: float | None = None,
        restore_best: bool = False,
    ) -> None:
        if patience is not None and (
            not isinstance(patience, int) or isinstance(patience, bool) or patience < 1
        ):
            raise ConfigurationError(
                f"EarlyStopping patience must be an integer >= 1 or None, got {patience!r}"
            )
        if patience is None and target is None:
            raise ConfigurationError("EarlyStopping needs a patience, a target, or both")
        self.monitor = Monitor(monitor, mode, min_delta, owner=f"EarlyStopping(monitor={monitor!r})")
        self.patience = patience
        self.target = None if target is None else float(target)
        self.restore_best = bool(restore_best)
        self.best_value: float | None = None
        self.best_iteration: int | None = None
        self.stopped_iteration: int | None = None
        self.wait = 0
        self._snapshots: Path | None = None

    def on_train_begin(self, context: TrainContext) -> None:
        self.monitor.start()
        self.best_value, self.best_iteration, self.stopped_iteration, self.wait = None, None, None, 0
        if self._snapshots is not None:  # left by a run that failed before on_train_end
            shutil.rmtree(self._snapshots, ignore_errors=True)
            self._snapshots = None
        if self.restore_best:
            self._snapshots = Path(tempfile.mkdtemp(prefix="polyrl-early-stopping-"))

    def on_iteration_begin(self, context: TrainContext, iteration: int) -> None:
        self.monitor.check(context)

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        value = self.monitor.value(context, record)
        if value is None:
            return
        name = self.monitor.name
        if self.monitor.better(value, self.best_value):
            self.best_value, self.best_iteration, self.wait = value, record.iteration, 0
            if self._snapshots is not None:
                context.agent.save(self._snapshots / "best")
        else:
            self.wait += 1
        if self.target is not None and self.monitor.reached(value, self.target):
            self.stopped_iteration = record.iteration
            context.stop(
                f"EarlyStopping: {name} = {value:g} reached the target {self.target:g} "
                f"at iteration {record.iteration}"
            )
        elif self.patience is not None and self.wait >= self.patience:
            self.stopped_iteration = record.iteration
            context.stop(
                f"EarlyStopping: {name} did not improve by more than {self.monitor.min_delta:g} for "
                f"{self.wait} iterations (best {self.best_value:g} at iteration {self.best_iteration})"
            )

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        snapshots, self._snapshots = self._snapshots, None
        if snapshots is None:
            return
        try:
            best = snapshots / "best"
            if best.is_dir() and self.best_iteration != context.agent.iterations:
                context.agent.restore(best)
        finally:
            shutil.rmtree(snapshots, ignore_errors=True)

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor.name!r}, mode={self.monitor.mode!r}, "
            f"patience={self.patience}, target={self.target})"
        )
