"""What a study found: its trials as rows, counts, the best spec (best.json) and the reports.

`TuneReport` is what `polyrl.tune` returns and `polyrl tune --json` prints (also stored as
report.json in the tune directory).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, JsonValue

from polyrl._model import StrictModel
from polyrl.experiments.plan import RunPlan, write_json
from polyrl.tuning.plan import BEST_FILE, TuneSettings, iteration_warning
from polyrl.tuning.study import FAILURE, trial_state

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

TrialState = Literal["complete", "pruned", "failed", "interrupted", "running"]


class TrialRow(StrictModel):
    """One trial: its state, value, parameters and run directories."""

    number: int
    state: TrialState
    value: float | None = Field(description="The objective (complete) or the last reported evaluation.")
    step: int | None = Field(description="Env steps of the last evaluation reported to the pruner.")
    params: dict[str, JsonValue]
    reason: str | None = Field(default=None, description="Why the trial failed or was pruned.")
    seeds: list[int] = Field(default_factory=list)
    seconds: float | None = None
    iteration_steps: int | None = Field(
        default=None, description="Env steps of one training iteration, as the backend built the trial."
    )
    directories: list[str] = Field(
        default_factory=list, description="Run directories, relative to the study's."
    )


class TrialCounts(StrictModel):
    """How the study's trials ended; `interrupted` ones (Ctrl-C, a crashed worker) do not count
    toward the number of trials, so --resume runs others in their place."""

    complete: int
    pruned: int
    failed: int
    interrupted: int
    running: int
    total: int


class FreshEvaluation(StrictModel):
    """The best trial's spec trained again on seeds no trial used: the final evaluation of each."""

    trial: int
    seeds: list[int]
    returns: list[float | None]
    mean: float | None
    std: float | None
    directories: list[str]
    errors: list[str] = Field(default_factory=list)


class StudySummary(StrictModel):
    """One study (one backend): counts, best trial and spec, top trials, fresh seeds, plots."""

    study: str
    backend: str
    directory: str
    storage: str = Field(description="The study database (secrets hidden).")
    counts: TrialCounts
    best: TrialRow | None
    best_spec: str | None = Field(description="best.json: the best trial's spec, for polyrl train --spec.")
    top: list[TrialRow]
    failed: list[TrialRow] = Field(description="Failed trials with their reasons.")
    fresh: FreshEvaluation | None = None
    plots: list[str] = Field(default_factory=list)
    wall_seconds: float = Field(
        description="Wall time of this call's trials (fresh seeds and plots excluded)."
    )
    trial_seconds: float = Field(description="Summed duration of every finished trial (all sessions).")
    dashboard: str = Field(description="The command that opens the study in optuna-dashboard.")


class BackendRow(StrictModel):
    """A row of the comparison across backends."""

    backend: str
    study: str
    best_value: float | None
    best_trial: int | None
    complete: int
    pruned: int
    failed: int
    fresh_mean: float | None
    wall_seconds: float


class TuneReport(StrictModel):
    """Everything a tuning call found: one summary per study, and the comparison across backends."""

    name: str
    directory: str
    searched: list[str] = Field(default_factory=list, description="The field paths the studies search.")
    fixed: list[str] = Field(
        default_factory=list,
        description="The field paths you fixed (flags, --spec): not searched, even where the ready "
        "space would search them.",
    )
    warnings: list[str] = Field(
        default_factory=list, description="What may make the results mean less than asked (see docs)."
    )
    studies: list[StudySummary]
    comparison: list[BackendRow] = Field(
        default_factory=list, description="One row per backend (2+ backends)."
    )

    def compare(self) -> list[BackendRow]:
        """The comparison rows of the studies."""
        return [
            BackendRow(
                backend=s.backend,
                study=s.study,
                best_value=s.best.value if s.best else None,
                best_trial=s.best.number if s.best else None,
                complete=s.counts.complete,
                pruned=s.counts.pruned,
                failed=s.counts.failed,
                fresh_mean=s.fresh.mean if s.fresh else None,
                wall_seconds=s.wall_seconds,
            )
            for s in self.studies
        ]


def _json_value(value: Any) -> JsonValue:
    return (
        value if isinstance(value, str | int | float | bool | type(None)) else json.loads(json.dumps(value))
    )


def trial_row(trial: FrozenTrial) -> TrialRow:
    """A FrozenTrial as polyrl reports it."""
    state = trial_state(trial)
    steps = sorted(trial.intermediate_values)
    last = trial.intermediate_values[steps[-1]] if steps else None
    value = trial.value if state == "complete" else last
    reason = trial.user_attrs.get(FAILURE)
    if state == "pruned":
        reason = f"pruned at {trial.user_attrs.get('pruned_step', steps[-1] if steps else 0):,} env steps"
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialRow(
        number=trial.number,
        state=state,  # type: ignore[arg-type]
        value=None if value is None or not math.isfinite(value) else float(value),
        step=steps[-1] if steps else None,
        params={name: _json_value(v) for name, v in trial.user_attrs.get("values", trial.params).items()},
        reason=reason,
        seeds=list(trial.user_attrs.get("seeds", [])),
        seconds=duration,
        directories=list(trial.user_attrs.get("directories", [])),
        iteration_steps=trial.user_attrs.get("iteration_steps"),
    )


def count(rows: list[TrialRow]) -> TrialCounts:
    """How many trials ended in each state."""
    states = [row.state for row in rows]
    return TrialCounts(
        complete=states.count("complete"),
        pruned=states.count("pruned"),
        failed=states.count("failed"),
        interrupted=states.count("interrupted"),
        running=states.count("running"),
        total=len(states),
    )


def best_row(study: Study) -> TrialRow | None:
    """The complete trial with the highest value (the earliest of equals), or None."""
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    complete = [row for row in rows if row.state == "complete" and row.value is not None]
    return max(complete, key=lambda row: (row.value, -row.number)) if complete else None


def top_rows(rows: list[TrialRow], top: int) -> list[TrialRow]:
    """The `top` complete trials by value, best first (ties: the earlier trial first)."""
    complete = [row for row in rows if row.state == "complete" and row.value is not None]
    return sorted(complete, key=lambda row: (-(row.value or 0.0), row.number))[:top]


def write_best(directory: Path, best: TrialRow) -> Path:
    """best.json: the best trial's full spec (its first seed's), which `polyrl train --spec` reads."""
    plan = RunPlan.read(directory / best.directories[0])
    target = directory / BEST_FILE
    write_json(target, plan.spec.model_dump(mode="json"))
    return target


def used_seeds(study: Study) -> set[int]:
    """Every seed a trial of the study trained."""
    return {int(seed) for t in study.get_trials(deepcopy=False) for seed in t.user_attrs.get("seeds", [])}


def study_warning(study: str, rows: list[TrialRow], settings: TuneSettings) -> str | None:
    """One warning for the trials of a study whose iterations were too large, or None."""
    large = [row for row in rows if row.iteration_steps and iteration_warning(row.iteration_steps, settings)]
    if not large:
        return None
    largest = max(row.iteration_steps or 0 for row in large)
    numbers = ", ".join(str(row.number) for row in large[:10]) + (", ..." if len(large) > 10 else "")
    return (
        f"study {study}: {len(large)} of {len(rows)} trials (trial {numbers}) collected up to {largest:,} "
        f"env steps per iteration; {iteration_warning(largest, settings)}"
    )
