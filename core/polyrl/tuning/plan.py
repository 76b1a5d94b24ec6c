"""What a tuning run is: its settings (TuneSettings) and its plan on disk (tune.json).

A tune directory holds one study per backend:

    runs/tune/NAME/                  one backend: the study's files are here
      tune.json                      the plan: base spec, space, settings, backends, storage
      study.db                       the Optuna study (SQLite) unless --storage names another database
      trials/0000-seed1234/          one run directory per trial and seed (like a grid's)
      fresh/0007-seed99/             the best trial's spec re-trained on fresh seeds
      best.json                      the best trial's spec (`polyrl train --spec best.json`)
      history.png, importance.png    optimisation history, parameter importance
      report.json                    the summary `polyrl tune --json` prints
    runs/tune/NAME/BACKEND/          several backends: one such directory per backend (no tune.json,
                                     no study.db: those stay at the top, one study per backend)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from polyrl._model import SpecModel, StrictModel
from polyrl.files import write_text_atomically
from polyrl.spec import AgentSpec, Seed
from polyrl.tuning.space import SearchSpace

PLAN_FILE = "tune.json"
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
FRESH_DIR = "fresh"
BEST_FILE = "best.json"
REPORT_FILE = "report.json"
HISTORY_PLOT = "history.png"
IMPORTANCE_PLOT = "importance.png"
DEFAULT_ROOT = Path("runs") / "tune"
MAX_SEEDS = 32

Sampler = Literal["tpe", "random"]
Pruner = Literal["median", "hyperband", "halving", "none"]


class TuneSettings(SpecModel):
    """How a study searches: its budget, evaluation cadence, seeds, sampler and pruner."""

    trials: Annotated[int, Field(gt=0)] = 20
    """Trials per study over all workers; trials finished in earlier sessions count (--resume)."""
    steps: Annotated[int, Field(gt=0)] = 20_000
    """Env steps each seed of a trial trains."""
    eval_every: Annotated[int, Field(gt=0)] = 2_000
    """Env steps between deterministic evaluations; each one is reported to the pruner."""
    eval_episodes: Annotated[int, Field(gt=0)] = 5
    """Deterministic episodes per evaluation."""
    seeds: Annotated[int, Field(gt=0, le=MAX_SEEDS)] = 1
    """Seeds per trial, trained in lockstep; the objective is the mean over them."""
    objective: Literal["final", "mean"] = "final"
    """"final": the last evaluation (what the trial ends with); "mean": the mean of all its
    evaluations (the area under the learning curve: rewards learning fast, which "final" cannot
    see once many trials reach an env's maximum return)."""
    fresh_seeds: Annotated[int, Field(ge=0, le=MAX_SEEDS)] = 2
    """Seeds the best spec is re-trained on after the study (seeds no trial used); 0: none."""
    sampler: Sampler = "tpe"
    """tpe (Optuna's TPESampler) or random."""
    pruner: Pruner = "median"
    """median, hyperband, halving (successive halving) or none."""
    startup_trials: Annotated[int, Field(ge=0)] = 5
    """Trials sampled at random (TPE) and never pruned (median) before the models take over."""
    warmup_steps: Annotated[int, Field(ge=0)] | None = None
    """Env steps before the median pruner may prune a trial; None: a third of `steps`."""
    study_seed: Seed = 0
    """Seeds the sampler and every trial's seeds: the same study seed draws the same seeds."""
    top: Annotated[int, Field(gt=0)] = 10
    """Trials in the table of best trials."""

    @model_validator(mode="after")
    def _evaluations_fit(self) -> TuneSettings:
        if self.eval_every > self.steps:
            raise ValueError(
                f"eval_every ({self.eval_every}) is larger than steps ({self.steps}): a trial would be "
                "evaluated only at its end and never pruned; lower eval_every"
            )
        return self

    @property
    def boundaries(self) -> list[int]:
        """The env steps at which a trial is evaluated: every eval_every, and at the end."""
        points = list(range(self.eval_every, self.steps + 1, self.eval_every))
        return points if points[-1] == self.steps else [*points, self.steps]

    @property
    def warmup(self) -> int:
        """The median pruner's warm-up in env steps."""
        return self.steps // 3 if self.warmup_steps is None else self.warmup_steps


#: Settings that define the study: a resumed study keeps them (others, such as the number of
#: trials, may change between sessions).
PLANNED = ("steps", "eval_every", "eval_episodes", "seeds", "sampler", "pruner", "startup_trials",
           "warmup_steps", "study_seed")  # fmt: skip


class TunePlan(StrictModel):
    """A tuning run as planned, stored in tune.json; workers and --resume read it back."""

    format: Literal["polyrl-tune"] = "polyrl-tune"
    name: str = Field(min_length=1)
    spec: AgentSpec = Field(description="The base spec: the fields no trial changes.")
    space: SearchSpace
    fixed: list[str] = Field(
        default_factory=list,
        description="The field paths the user fixed (flags, --spec): never searched (left out of a "
        "ready space).",
    )
    settings: TuneSettings
    backends: list[str] = Field(min_length=1)
    storage: str | None = Field(
        default=None,
        description="The study database's URL with secrets hidden; None: study.db in the directory.",
    )

    def study_name(self, backend: str) -> str:
        """The Optuna study of a backend: NAME, or NAME-BACKEND when several backends are compared."""
        return self.name if len(self.backends) == 1 else f"{self.name}-{backend}"

    def study_directory(self, root: Path, backend: str) -> Path:
        """Where a backend's trials and results go."""
        return root if len(self.backends) == 1 else root / backend

    def study_spec(self, backend: str) -> AgentSpec:
        """The base spec on `backend` (an env callable passed in Python is kept)."""
        spec = AgentSpec.model_validate(
            {**self.spec.model_dump(mode="json", exclude_unset=True), "backend": backend}
        )
        if not isinstance(self.spec.env, str):
            spec.env = self.spec.env
        return spec

    def write(self, root: Path) -> None:
        """Store the plan as root/tune.json."""
        root.mkdir(parents=True, exist_ok=True)
        document = self.model_dump(mode="json", exclude={"space"})
        document["space"] = self.space.document()
        write_text_atomically(root / PLAN_FILE, json.dumps(document, indent=2))

    @classmethod
    def read(cls, root: Path) -> TunePlan:
        """The plan in root/tune.json."""
        return cls.model_validate_json((root / PLAN_FILE).read_text(encoding="utf-8"))


def iteration_warning(size: int, settings: TuneSettings) -> str | None:
    """Why an iteration of `size` env steps is too large for the study's --steps or --eval-every
    (and which flag to change), or None when it fits."""
    if size > settings.steps:
        return (
            f"{size:,} env steps per iteration is more than --steps {settings.steps}: a trial trains one "
            f"whole iteration ({size:,} env steps) and is evaluated once, at its end; set a smaller "
            f"iteration with --iteration-steps (at most --eval-every, {settings.eval_every}), "
            "or raise --steps"
        )
    # Up to twice --eval-every only shifts the evaluations a little (PPO's 2048-step rollouts
    # against the default 2000): not worth a warning.
    if size > 2 * settings.eval_every:
        return (
            f"{size:,} env steps per iteration is more than --eval-every {settings.eval_every}: a trial is "
            f"evaluated when an iteration ends, first at {size:,} env steps; set a smaller iteration with "
            f"--iteration-steps (at most {settings.eval_every}), or raise --eval-every"
        )
    return None


def default_storage(root: Path) -> str:
    """The SQLite URL of root/study.db (absolute: workers and Ray tasks may start elsewhere)."""
    return f"sqlite:///{(root / STUDY_FILE).absolute()}"
