"""ExperimentGrid: vary any spec field and the seed, run every combination in its own process."""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.console import Console

from polyrl._model import StrictModel
from polyrl.cli.overrides import merge
from polyrl.config import TrainConfig
from polyrl.errors import ConfigurationError
from polyrl.experiments.executors import default_workers, run_local, run_ray
from polyrl.experiments.naming import experiment_directory, run_directory, variant_name
from polyrl.experiments.plan import PLAN_FILE, RunPlan, RunStatus, write_json
from polyrl.experiments.progress import GridProgress
from polyrl.plugins import registry
from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT, check_connect_timeout
from polyrl.run import check_algorithm
from polyrl.spec import AgentSpec

GRID_FILE = "grid.json"


class GridCounts(StrictModel):
    """How many runs of a grid ended how; `done` includes the `skipped` ones."""

    done: int = Field(description="Runs that finished, in this call or before it.")
    skipped: int = Field(description="Runs that had finished before this call (resume) and were not run.")
    failed: int
    interrupted: int = Field(description="Runs stopped by Ctrl-C, or never started because of it.")
    total: int


class GridResult(StrictModel):
    """Every run of a grid and how it went."""

    experiment_dir: str
    runs: list[RunStatus]
    skipped: list[str] = Field(default_factory=list, description="Runs finished before this call (resume).")

    @property
    def failed(self) -> list[RunStatus]:
        """The runs that failed, with their errors."""
        return [run for run in self.runs if run.status == "failed"]

    @property
    def interrupted(self) -> list[RunStatus]:
        """The runs a Ctrl-C stopped or kept from starting; `ExperimentGrid.resume` runs them."""
        return [run for run in self.runs if run.status == "interrupted"]

    @property
    def counts(self) -> GridCounts:
        """Done (of which skipped), failed and interrupted runs."""
        return GridCounts(
            done=sum(run.status == "done" for run in self.runs),
            skipped=len(self.skipped),
            failed=len(self.failed),
            interrupted=len(self.interrupted),
            total=len(self.runs),
        )

    def report(self) -> GridReport:
        """This result with its counts: what `polyrl grid --json` prints."""
        return GridReport(
            experiment_dir=self.experiment_dir, counts=self.counts, runs=self.runs, skipped=self.skipped
        )


class GridReport(StrictModel):
    """A GridResult with its counts, as one JSON document (`polyrl grid --json`)."""

    experiment_dir: str
    counts: GridCounts
    runs: list[RunStatus]
    skipped: list[str] = Field(default_factory=list, description="Runs finished before this call (resume).")


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a grid; `result` holds every run's status, the interrupted ones included.

    A KeyboardInterrupt, so a script stops as it would on Ctrl-C; `ExperimentGrid.resume`
    (`polyrl grid --resume DIR`) runs the interrupted runs again.
    """

    def __init__(self, result: GridResult) -> None:
        super().__init__(f"{result.experiment_dir}: {len(result.interrupted)} run(s) interrupted")
        self.result = result


def _check_backend(spec: AgentSpec) -> None:
    # A misspelt backend or algorithm fails here, before anything is written, instead of in every
    # run's process. Only declared names are checked: the library may live on the cluster.
    check_algorithm(registry().backend(spec.backend), spec)


def _nested(key: str, value: Any) -> dict[str, Any]:
    *outer, inner = key.replace(":", ".").split(".")
    document: dict[str, Any] = {inner: value}
    for part in reversed(outer):
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
            _check_backend(spec)
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
        console: Console | None = None,
        ray_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> GridResult:
        """Plan the grid and run it: a local process pool, or Ray tasks when `ray_address` is given.

        Ctrl-C stops every run, marks the unfinished ones "interrupted" and raises GridInterrupted.
        A `ray_address` that does not answer as a Ray cluster within `ray_connect_timeout`
        seconds raises RayConnectionError before any run starts (the plan stays, for resume()).
        """
        check_connect_timeout(ray_connect_timeout)
        experiment = self.plan(base, train_config, eval_episodes)
        return run_experiment(experiment, workers, ray_address, show_progress, console, ray_connect_timeout)

    @staticmethod
    def resume(
        experiment_dir: str | Path,
        workers: int | None = None,
        ray_address: str | None = None,
        show_progress: bool = True,
        console: Console | None = None,
        ray_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> GridResult:
        """Run what an interrupted or partly failed grid has not finished; finished runs are skipped."""
        return run_experiment(
            Path(experiment_dir), workers, ray_address, show_progress, console, ray_connect_timeout
        )


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


def _mark_interrupted(directories: list[Path]) -> None:
    # Runs that were running (and did not record their end) or never started: resume runs them.
    for directory in directories:
        status = RunStatus.read(directory)
        if status is None:
            plan = RunPlan.read(directory)
            status = RunStatus(
                status="running", directory=str(directory), name=plan.name, variant=plan.variant
            )
        if status.status == "running":
            status.model_copy(update={"status": "interrupted"}).write()


def run_experiment(
    experiment: Path,
    workers: int | None = None,
    ray_address: str | None = None,
    show_progress: bool = True,
    console: Console | None = None,
    ray_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> GridResult:
    """Run every unfinished run of an experiment directory and return all their statuses.

    Finished runs are skipped; failed and interrupted ones start over from their plan. On Ctrl-C
    every run process is stopped, the unfinished runs are marked "interrupted" and
    GridInterrupted (a KeyboardInterrupt holding the GridResult) is raised. With `ray_address`,
    RayConnectionError is raised if the cluster does not answer within `ray_connect_timeout` s.
    """
    check_connect_timeout(ray_connect_timeout)
    directories = _directories(experiment)
    finished = {d for d in directories if (s := RunStatus.read(d)) is not None and s.status == "done"}
    todo = [d for d in directories if d not in finished]
    for directory in todo:
        _reset(directory)
    statuses: dict[Path, RunStatus] = {}
    interrupted = False
    progress = GridProgress(directories, finished, console if show_progress else Console(quiet=True))
    with progress:
        try:
            if todo:
                if ray_address:
                    ended = run_ray(todo, ray_address, progress.tick, ray_connect_timeout)
                else:
                    ended = run_local(todo, workers or default_workers(len(todo)), progress.tick)
                with contextlib.closing(ended):  # a Ctrl-C between two runs still stops the others
                    for status in ended:
                        statuses[Path(status.directory)] = status
                        progress.finished(status)
        except KeyboardInterrupt:
            interrupted = True
            _mark_interrupted(todo)
            statuses = {}
            progress.reread(todo)  # the table's last frame shows the runs as interrupted
    runs = [statuses.get(d) or RunStatus.read(d) for d in directories]
    result = GridResult(
        experiment_dir=str(experiment),
        runs=[r for r in runs if r is not None],
        skipped=[str(d) for d in directories if d in finished],
    )
    if interrupted:
        raise GridInterrupted(result)
    return result
