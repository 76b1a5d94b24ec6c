"""Learning-rate callbacks: a schedule by iteration or progress, and reduce-on-plateau.

Both change the rate through `context.learning_rate`, which sets it in the backend's optimizer
(the driver's set_learning_rate), so the next iteration trains with it on every backend.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from polyrl.callbacks.base import Callback
from polyrl.callbacks.monitor import Mode, Monitor
from polyrl.errors import ConfigurationError

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord


def _takes_two_arguments(fn: Callable[..., float]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _checked_rate(value: object, owner: str, at: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(
            f"{owner}: the schedule returned {value!r} {at}; a learning rate is a number > 0"
        )
    return float(value)


class LearningRateScheduler(Callback):
    """Set the learning rate before each iteration from `schedule`.

    `by="iteration"`: `schedule(iteration)` with the agent's lifetime iteration number (from 1;
    it continues after load). `by="progress"`: `schedule(progress)` with the fraction of this
    train() call already done, from 0.0 at the first iteration towards 1.0 (by env steps,
    iterations or time, whichever limit of the TrainConfig is closest). A schedule may take the
    current rate as a second argument, Keras style: `schedule(x, lr)`. `history` lists
    (iteration, rate) pairs.
    """

    def __init__(
        self, schedule: Callable[..., float], by: Literal["iteration", "progress"] = "iteration"
    ) -> None:
        if not callable(schedule):
            raise ConfigurationError(f"LearningRateScheduler needs a callable schedule, got {schedule!r}")
        if by not in ("iteration", "progress"):
            raise ConfigurationError(
                f"LearningRateScheduler by must be 'iteration' or 'progress', got {by!r}"
            )
        self.schedule = schedule
        self.by = by
        self._with_rate = _takes_two_arguments(schedule)
        self.history: list[tuple[int, float]] = []
        self._start_steps = 0
        self._started = 0.0
        self._run_iterations = 0

    def on_train_begin(self, context: TrainContext) -> None:
        self._start_steps = context.env_steps
        self._started = time.perf_counter()
        self._run_iterations = 0

    def progress(self, context: TrainContext) -> float:
        """The fraction of the run done so far, by its nearest limit, in [0, 1]."""
        config = context.config
        fractions = [0.0]
        if config.total_steps:
            fractions.append((context.env_steps - self._start_steps) / config.total_steps)
        if config.iterations:
            fractions.append(self._run_iterations / config.iterations)
        if config.time_limit:
            fractions.append((time.perf_counter() - self._started) / config.time_limit)
        return min(max(fractions), 1.0)

    def on_iteration_begin(self, context: TrainContext, iteration: int) -> None:
        x: float = iteration if self.by == "iteration" else self.progress(context)
        raw = self.schedule(x, context.learning_rate) if self._with_rate else self.schedule(x)
        rate = _checked_rate(raw, repr(self), f"for {self.by} {x:g}")
        if not math.isclose(rate, context.learning_rate, rel_tol=1e-12, abs_tol=0.0):
            context.learning_rate = rate
        self.history.append((iteration, rate))

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        self._run_iterations += 1

    def __repr__(self) -> str:
        name = getattr(self.schedule, "__name__", type(self.schedule).__name__)
        return f"LearningRateScheduler({name}, by={self.by!r})"


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience` iterations.

    Never goes below `min_lr`; after a reduction, waits `cooldown` iterations before counting
    again. Like EarlyStopping, patience counts iterations that have a value for the metric.
    `reductions` lists (iteration, old rate, new rate).
    """

    def __init__(
        self,
        monitor: str = "return_mean",
        factor: float = 0.5,
        patience: int = 5,
        min_delta: float = 0.0,
        mode: Mode = "auto",
        min_lr: float = 0.0,
        cooldown: int = 0,
    ) -> None:
        if not isinstance(factor, int | float) or not 0 < factor < 1:
            raise ConfigurationError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor!r}")
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise ConfigurationError(f"ReduceLROnPlateau patience must be an integer >= 1, got {patience!r}")
        if not isinstance(cooldown, int) or isinstance(cooldown, bool) or cooldown < 0:
            raise ConfigurationError(f"ReduceLROnPlateau cooldown must be an integer >= 0, got {cooldown!r}")
        if not isinstance(min_lr, int | float) or min_lr < 0:
            raise ConfigurationError(f"ReduceLROnPlateau min_lr must be >= 0, got {min_lr!r}")
        self.monitor = Monitor(monitor, mode, min_delta, owner=f"ReduceLROnPlateau(monitor={monitor!r})")
        self.factor = float(factor)
        self.patience = patience
        self.min_lr = float(min_lr)
        self.cooldown = cooldown
        self.best_value: float | None = None
        self.wait = 0
        self._cooldown_left = 0
        self.reductions: list[tuple[int, float, float]] = []

    def on_train_begin(self, context: TrainContext) -> None:
        self.monitor.start()
        self.best_value, self.wait, self._cooldown_left = None, 0, 0

    def on_iteration_begin(self, context: TrainContext, iteration: int) -> None:
        self.monitor.check(context)

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        value = self.monitor.value(context, record)
        if value is None:
            return
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            self.wait = 0
        if self.monitor.better(value, self.best_value):
            self.best_value, self.wait = value, 0
            return
        if self._cooldown_left > 0:
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old = context.learning_rate
        new = max(old * self.factor, self.min_lr)
        if new < old and new > 0:
            context.learning_rate = new
            self.reductions.append((record.iteration, old, new))
        self._cooldown_left = self.cooldown
        self.wait = 0

    def __repr__(self) -> str:
        return (
            f"ReduceLROnPlateau(monitor={self.monitor.name!r}, factor={self.factor}, "
            f"patience={self.patience}, min_lr={self.min_lr})"
        )
