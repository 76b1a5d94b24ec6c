"""ModelCheckpoint: save the agent every N iterations and keep the best one by a monitored metric."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.callbacks.base import Callback
from polyrl.callbacks.monitor import Mode, Monitor
from polyrl.errors import ConfigurationError
from polyrl.files import writable_dir, write_text_atomically

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult

INDEX_NAME = "checkpoints.json"


def _positive_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{what} must be an integer >= 1, got {value!r}")
    return value


class ModelCheckpoint(Callback):
    """Save checkpoints during training: every `every` iterations, and the best by `monitor`.

    Layout of `directory`:
    - `best/`: the checkpoint with the best `monitor` value so far (checked every `every`
      iterations); its manifest's metadata says `iteration`, `env_steps`, `monitor`, `value`
      and `mode`, so `Agent.load(directory / "best")` gives the best agent and says why.
    - `iteration-000010/` ...: periodic checkpoints (not with `save_best_only=True`); only the
      `keep_last` most recent ones written by this callback are kept (None keeps all).
    - `last/`: the agent at the end of each train() call, with `save_last=True`.
    - `checkpoints.json`: an index of the above.

    Every write is atomic (`Agent.save`): a crash leaves the previous checkpoint intact.
    `mode="auto"` minimises losses and durations and maximises everything else; pass
    `mode="min"` for metrics such as MountainCar's episode length. The directory must be
    writable when training starts; the monitor name is checked before the first iteration.
    """

    def __init__(
        self,
        directory: str | Path,
        monitor: str = "return_mean",
        mode: Mode = "auto",
        every: int = 1,
        save_best_only: bool = False,
        keep_last: int | None = None,
        min_delta: float = 0.0,
        save_last: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.monitor = Monitor(monitor, mode, min_delta, owner=f"ModelCheckpoint({str(directory)!r})")
        self.every = _positive_int(every, "ModelCheckpoint every")
        self.keep_last = None if keep_last is None else _positive_int(keep_last, "ModelCheckpoint keep_last")
        self.save_best_only = bool(save_best_only)
        self.save_last = bool(save_last)
        self.best_value: float | None = None
        self.best_iteration: int | None = None
        self.saved: list[Path] = []

    @property
    def best_path(self) -> Path:
        """Where the best checkpoint is (it exists once one was saved)."""
        return self.directory / "best"

    def on_train_begin(self, context: TrainContext) -> None:
        self.directory = writable_dir(self.directory, repr(self))
        self.monitor.start()

    def on_iteration_begin(self, context: TrainContext, iteration: int) -> None:
        self.monitor.check(context)

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        value = self.monitor.value(context, record)
        if record.iteration % self.every:
            return
        if value is not None and self.monitor.better(value, self.best_value):
            self.best_value, self.best_iteration = value, record.iteration
            self._save(context, self.best_path, "best", record, value)
        if not self.save_best_only:
            path = self.directory / f"iteration-{record.iteration:06d}"
            self._save(context, path, "periodic", record, value)
            if path in self.saved:
                self.saved.remove(path)
            self.saved.append(path)
            while self.keep_last is not None and len(self.saved) > self.keep_last:
                shutil.rmtree(self.saved.pop(0), ignore_errors=True)
        self._write_index()

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        if self.save_last and result.last is not None:
            record = result.last
            self._save(context, self.directory / "last", "last", record, self.monitor.value(context, record))
            self._write_index()

    def _save(
        self, context: TrainContext, path: Path, kind: str, record: IterationRecord, value: float | None
    ) -> None:
        metadata = {
            "saved_by": "ModelCheckpoint",
            "kind": kind,
            "iteration": record.iteration,
            "env_steps": record.env_steps,
            "monitor": self.monitor.name,
            "mode": self.monitor.mode,
            "value": value if value is not None and value == value else None,  # NaN is not JSON
        }
        context.agent.save(path, metadata=metadata)

    def _write_index(self) -> None:
        index = {
            "monitor": self.monitor.name,
            "mode": self.monitor.mode,
            "best": None
            if self.best_iteration is None
            else {"path": "best", "iteration": self.best_iteration, "value": self.best_value},
            "periodic": [p.name for p in self.saved],
        }
        write_text_atomically(self.directory / INDEX_NAME, json.dumps(index, indent=2))

    def __repr__(self) -> str:
        return (
            f"ModelCheckpoint({str(self.directory)!r}, monitor={self.monitor.name!r}, "
            f"mode={self.monitor.mode!r}, every={self.every})"
        )
