"""What one run of an experiment is (RunPlan) and how it went (RunStatus), as files in its directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, JsonValue, field_serializer

from polyrl._model import StrictModel
from polyrl.config import TrainConfig
from polyrl.files import write_text_atomically
from polyrl.redact import redact_optional
from polyrl.spec import AgentSpec

PLAN_FILE = "plan.json"
STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.csv"
RECORDS_FILE = "records.jsonl"
CHECKPOINT_DIR = "checkpoint"
PLOT_FILE = "plots.png"


class RunPlan(StrictModel):
    """One run of a grid: its spec, schedule and the values that distinguish it from its siblings."""

    name: str
    variant: dict[str, JsonValue] = Field(description="The varied fields and their values (incl. seed).")
    spec: AgentSpec
    train_config: TrainConfig
    eval_episodes: int = Field(default=10, ge=0, description="Deterministic episodes after training.")

    def write(self, directory: Path) -> None:
        """Store the plan in the run directory (created if needed)."""
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / PLAN_FILE, self.model_dump(mode="json"))

    @classmethod
    def read(cls, directory: Path) -> RunPlan:
        """The plan stored in a run directory."""
        return cls.model_validate_json((Path(directory) / PLAN_FILE).read_text())


class RunStatus(StrictModel):
    """How a run went: written when it starts, ends, fails or is interrupted (status.json).

    "interrupted": the grid was stopped (Ctrl-C) while the run was running or before it started;
    `polyrl grid --resume` runs it again from its plan. "pruned": a tuning trial the pruner
    stopped early (`polyrl tune`); its checkpoint holds what it had learned by then.
    """

    status: Literal["running", "done", "failed", "interrupted", "pruned"]
    directory: str
    name: str
    variant: dict[str, JsonValue] = Field(default_factory=dict)
    error: str | None = None
    env_steps: int = 0
    iterations: int = 0
    wall_seconds: float = 0.0
    final_return_mean: float | None = Field(
        default=None, description="Training return of the last iteration."
    )
    best_return_mean: float | None = Field(default=None, description="Best training return of any iteration.")
    eval_return_mean: float | None = Field(
        default=None, description="Deterministic evaluation after training."
    )
    eval_return_std: float | None = None

    @classmethod
    def read(cls, directory: Path) -> RunStatus | None:
        """The status of a run directory, None if it never started."""
        path = Path(directory) / STATUS_FILE
        return cls.model_validate_json(path.read_text()) if path.is_file() else None

    @field_serializer("error")
    def _redacted(self, error: str | None) -> str | None:
        # Errors quote URIs (MLflow names its tracking server, password included): every dump
        # (status.json, `polyrl grid --json`) hides them; the plan, which reruns need, is as given.
        return redact_optional(error)

    def write(self) -> None:
        """Store the status atomically in its run directory (secrets in the error redacted)."""
        write_json(Path(self.directory) / STATUS_FILE, self.model_dump(mode="json"))


def write_json(path: Path, document: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    write_text_atomically(path, json.dumps(document, indent=2, default=str))
