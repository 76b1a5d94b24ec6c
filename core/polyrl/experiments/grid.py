"""ExperimentGrid: vary any spec field and the seed, run every combination in its own process."""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field

from polyrl._model import StrictModel
from polyrl.cli.overrides import merge
from polyrl.config import TrainConfig
from polyrl.errors import ConfigurationError
from polyrl.experiments.executors import default_workers, run_local, run_ray
from polyrl.experiments.naming import experiment_directory, run_directory, variant_name
from polyrl.experiments.plan import PLAN_FILE, RunPlan, RunStatus, write_json
from polyrl.experiments.progress import GridProgress
from polyrl.spec import AgentSpec

GRID_FILE = "grid.json"


class GridResult(StrictModel):
    """Every run of a grid and how it went."""

    experiment_dir: str
    runs: list[RunStatus]
    skipped: list[str] = Field(default_factory=list, description="Runs finished before this call (resume).")

    @property
    def failed(self) -> list[RunStatus]:
        """The runs that failed, with their errors."""
        return [run for run in self.runs if run.status == "failed"]


def _nested(key: str, value: Any) -> dict[str, Any]:
    parts = key.replace(":", ".").split(".")
    document: Any = value
    for part in reversed(parts):
        document = {part: document}
    return document


class ExperimentGrid:
    """A grid of runs over backends x hyperparameters x seeds.

    >>> grid = ExperimentGrid("cartpole", data_dir="data")
    >>> grid.add("backend", ["sb3", "tianshou"]).add("learning_rate", [1e-3, 3e-4]).add("seed", [0, 1])
    >>> result = grid.run({"algorithm": "ppo", "env": "CartPole-v1"}, TrainConfig(total_steps=50_000))

    Keys are AgentSpec field names, nested ones as "ppo.n_epochs" or "ppo:n_epochs". Every run
    gets data_dir/DATE_name/DATE_TIME-name_variant_sSEED/ and runs in a fresh process.
    """

    def __init__(self, name: str, data_dir: str | Path = "data") -> None:
        if not name.strip():
            raise ConfigurationError("an experiment needs a name, e.g. ExperimentGrid('cartpole')")
        self.name = name
        self.data_dir = Path(data_dir)
        self.axes: dict[str, list[Any]] = {}

    def add(self, key: str, values: Any) -> ExperimentGrid:
        """Vary `key` over `values` (a single value fixes it for every run)."""
        values = list(values) if isinstance(values, list | tuple) else [values]
        if not values:
            raise ConfigurationError(f"grid axis {key!r} has no values")
        top = key.replace(":", ".").split(".")[0]
        if top not in AgentSpec.model_fields:
            fields = ", ".join(sorted(AgentSpec.model_fields))
            raise ConfigurationError(f"cannot vary {key!r}: it is not an AgentSpec field ({fields})")
        self.axes[key] = values
        return self

    def variants(self) -> list[dict[str, Any]]:
        """Every combination of the axes, in the order they were added, seeds varying fastest."""
        keys = sorted(self.axes, key=lambda k: k == "seed")
        return [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(self.axes[k] for k in keys))
        ]

    def plan(
        self,
        base: AgentSpec | dict[str, Any],
        train_config: TrainConfig,
        eval_episodes: int = 10,
        when: datetime | None = None,
    ) -> Path:
        """Validate every run's spec and write the run directories; return the experiment directory.

        Every spec is validated here, so a bad value fails before any run starts.
        """
        base_document = (
            base.model_dump(mode="json", exclude_unset=True) if isinstance(base, AgentSpec) else dict(base)
        )
        when = when or datetime.now()
        experiment = experiment_directory(self.data_dir, self.name, when)
        plans = []
        for variant in self.variants():
            document = base_document
            for key, value in variant.items():
                document = merge(document, _nested(key, value))
            spec = AgentSpec.model_validate(document)
            plans.append(
                RunPlan(
                    name=variant_name(self.name, {k: v for k, v in variant.items() if len(self.axes[k]) > 1}),
                    variant=variant,
                    spec=spec,
                    train_config=train_config,
                    eval_episodes=eval_episodes,
                )
            )
        directories: list[str] = []
        for index, plan in enumerate(plans):
            # Run directories are named by start time; a second apart keeps names unique and ordered.
            directory = run_directory(experiment, plan.name, plan.spec.seed, when + timedelta(seconds=index))
            plan.write(directory)
            directories.append(directory.name)
        write_json(experiment / GRID_FILE, {"name": self.name, "runs": directories})
        return experiment

    def run(
        self,
        base: AgentSpec | dict[str, Any],
        train_config: TrainConfig,
        eval_episodes: int = 10,
        workers: int | None = None,
        ray_address: str | None = None,
        show_progress: bool = True,
    ) -> GridResult:
        """Plan the grid and run it: a local process pool, or Ray tasks when `ray_address` is given."""
        experiment = self.plan(base, train_config, eval_episodes)
        return run_experiment(experiment, workers, ray_address, show_progress)

    @staticmethod
    def resume(
        experiment_dir: str | Path,
        workers: int | None = None,
        ray_address: str | None = None,
        show_progress: bool = True,
    ) -> GridResult:
        """Run what an interrupted or partly failed grid has not finished; finished runs are skipped."""
        return run_experiment(Path(experiment_dir), workers, ray_address, show_progress)


Grid = ExperimentGrid


def _directories(experiment: Path) -> list[Path]:
    grid_file = experiment / GRID_FILE
    if not grid_file.is_file():
        raise ConfigurationError(
            f"{experiment} is not an experiment directory (no {GRID_FILE}); give the directory "
            "`polyrl grid` printed, e.g. data/2026-11-25_cartpole"
        )
    return [experiment / name for name in json.loads(grid_file.read_text())["runs"]]


def _reset(directory: Path) -> None:
    # A failed or interrupted run starts over from its plan: partial logs would mix two attempts.
    for child in directory.iterdir():
        if child.name == PLAN_FILE:
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def run_experiment(
    experiment: Path, workers: int | None = None, ray_address: str | None = None, show_progress: bool = True
) -> GridResult:
    """Run every unfinished run of an experiment directory and return all their statuses."""
    directories = _directories(experiment)
    finished = {d for d in directories if (s := RunStatus.read(d)) is not None and s.status == "done"}
    todo = [d for d in directories if d not in finished]
    for directory in todo:
        _reset(directory)
    progress = GridProgress(directories, finished)
    if not show_progress:
        progress.console.quiet = True
    statuses: dict[Path, RunStatus] = {}
    with progress:
        if todo:
            if ray_address:
                ended = run_ray(todo, ray_address, progress.tick)
            else:
                ended = run_local(todo, workers or default_workers(len(todo)), progress.tick)
            for status in ended:
                statuses[Path(status.directory)] = status
                progress.finished(status)
    runs = [statuses.get(d) or RunStatus.read(d) for d in directories]
    return GridResult(
        experiment_dir=str(experiment),
        runs=[r for r in runs if r is not None],
        skipped=[str(d) for d in directories if d in finished],
    )
