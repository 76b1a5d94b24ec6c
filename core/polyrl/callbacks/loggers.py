"""File loggers: every IterationRecord as CSV or JSON lines, and the run's spec and configs as JSON.

With `run_loggers(directory)` a run directory holds `run.json` (spec, TrainConfig, versions),
`progress.csv` and `records.jsonl`; `RunConfig.read(directory)` gives back what is needed to
train the same way again: `Agent(run.spec).train(run.train_config)`.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import Field

from polyrl._model import StrictModel
from polyrl.backend import EffectiveHyperparameters
from polyrl.callbacks.base import Callback
from polyrl.config import TrainConfig
from polyrl.files import writable_file, write_text_atomically
from polyrl.records import COMMON_METRICS
from polyrl.spec import AgentSpec
from polyrl.versions import environment_versions, polyrl_version

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult

RUN_FILE = "run.json"
CSV_FILE = "progress.csv"
JSONL_FILE = "records.jsonl"


class _FileLogger(Callback):
    """A callback writing one file; the first train() truncates it unless `append`, later ones append."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.append = bool(append)
        self._runs = 0

    def _prepare(self) -> bool:
        """Check the file is writable; True when this run continues an existing file."""
        self.path = writable_file(self.path, repr(self))
        self._runs += 1
        return (self.append or self._runs > 1) and self.path.is_file()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class CSVLogger(_FileLogger):
    """Write every IterationRecord as a CSV row: the common metrics first, then losses and others.

    A column that appears later (a loss once learning starts, eval_* at the first evaluation) is
    added by rewriting the file atomically; cells of rows without a value are empty.
    """

    def __init__(self, path: str | Path = CSV_FILE, append: bool = False, separator: str = ",") -> None:
        super().__init__(path, append)
        self.separator = separator
        self.columns: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._handle: IO[str] | None = None

    def on_train_begin(self, context: TrainContext) -> None:
        self.columns, self._rows = list(COMMON_METRICS), []
        if self._prepare():
            with self.path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle, delimiter=self.separator)
                self._rows = list(reader)
                self.columns += [c for c in reader.fieldnames or [] if c not in self.columns]
        self._rewrite()

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        row = record.flat()
        self._rows.append(row)
        new = [name for name in row if name not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
            return
        assert self._handle is not None
        self._writer(self._handle).writerow(row)
        self._handle.flush()

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        self._close()

    def _writer(self, handle: IO[str]) -> csv.DictWriter[str]:
        return csv.DictWriter(
            handle, self.columns, delimiter=self.separator, restval="", extrasaction="ignore"
        )

    def _rewrite(self) -> None:
        self._close()
        text = io.StringIO(newline="")
        writer = self._writer(text)
        writer.writeheader()
        writer.writerows(self._rows)
        write_text_atomically(self.path, text.getvalue())
        self._handle = self.path.open("a", newline="", encoding="utf-8")

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class JSONLinesLogger(_FileLogger):
    """Write every IterationRecord as one JSON line (`IterationRecord.model_validate_json` reads it)."""

    def __init__(self, path: str | Path = JSONL_FILE, append: bool = False) -> None:
        super().__init__(path, append)
        self._handle: IO[str] | None = None

    def on_train_begin(self, context: TrainContext) -> None:
        self._close()  # a file left open by a run that raised
        mode = "a" if self._prepare() else "w"
        self._handle = self.path.open(mode, encoding="utf-8")

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        if self._handle is not None:
            self._handle.write(record.model_dump_json() + "\n")
            self._handle.flush()

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        self._close()

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @staticmethod
    def read(path: str | Path) -> list[IterationRecord]:
        """The records of a JSON-lines file."""
        from polyrl.records import IterationRecord

        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [IterationRecord.model_validate_json(line) for line in lines if line.strip()]


class RunConfig(StrictModel):
    """What a run was: enough to train the same way again from this file alone."""

    format: Literal["polyrl-run"] = "polyrl-run"
    polyrl_version: str
    versions: dict[str, str | None]
    started_at: datetime
    spec: AgentSpec
    train_config: TrainConfig
    start_iteration: int = Field(description="Iterations the agent had before this run (0: fresh agent).")
    start_env_steps: int
    effective_hyperparameters: EffectiveHyperparameters | None = None

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        """Read `run.json` (or the file `path`)."""
        path = Path(path)
        if path.is_dir():
            path = path / RUN_FILE
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class RunConfigLogger(_FileLogger):
    """Save the run's spec and TrainConfig (plus versions and effective hyperparameters) as JSON.

    Written when training starts, then once more before the first iteration so changes other
    callbacks made to the config in on_train_begin (e.g. Evaluation) are included. When the
    agent was loaded or trained before (`start_iteration` > 0), reproducing also needs that
    checkpoint.
    """

    def __init__(self, path: str | Path = RUN_FILE) -> None:
        super().__init__(path, append=False)
        self._pending = False
        self._started = datetime.now(UTC)

    def on_train_begin(self, context: TrainContext) -> None:
        self._prepare()
        self._started = datetime.now(UTC)
        self._write(context)
        self._pending = True

    def on_iteration_begin(self, context: TrainContext, iteration: int) -> None:
        if self._pending:
            self._pending = False
            self._write(context)

    def _write(self, context: TrainContext) -> None:
        agent = context.agent
        run = RunConfig(
            polyrl_version=polyrl_version(),
            versions=environment_versions(agent.backend_info.library),
            started_at=self._started,
            spec=agent.spec,
            train_config=context.config,
            start_iteration=agent.iterations - len(context.history),
            start_env_steps=context.env_steps,
            effective_hyperparameters=agent.effective_hyperparameters(),
        )
        write_text_atomically(self.path, run.model_dump_json(indent=2))


def run_loggers(directory: str | Path) -> list[Callback]:
    """The three file loggers of a run directory: run.json, progress.csv and records.jsonl."""
    directory = Path(directory)
    return [
        RunConfigLogger(directory / RUN_FILE),
        CSVLogger(directory / CSV_FILE),
        JSONLinesLogger(directory / JSONL_FILE),
    ]
