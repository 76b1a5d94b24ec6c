"""One trial: its seeds trained in lockstep through polyrl's loop, evaluated and reported to the pruner.

Every `eval_every` env steps each seed's agent stops (a callback ends its train() call at the
first iteration past the step), plays `eval_episodes` deterministic episodes (the evaluation
`polyrl bench` runs), and the mean over seeds is reported to Optuna at that step; the pruner
may then end the trial. Each seed is a run directory like a grid run's (plan.json,
config.json, progress.csv with the evaluations, records.jsonl, status.json, checkpoint/), so
`polyrl compare`, `plot` and `rerun` read trials as they read grid runs.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from polyrl.callbacks.base import Callback
from polyrl.config import TrainConfig
from polyrl.experiments.plan import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    PROGRESS_FILE,
    RECORDS_FILE,
    RunPlan,
    RunStatus,
)
from polyrl.files import write_text_atomically
from polyrl.redact import redact_uri
from polyrl.spec import AgentSpec
from polyrl.tuning.plan import TRIALS_DIR, TuneSettings
from polyrl.tuning.space import SearchSpace, is_finite, with_values
from polyrl.tuning.study import FAILURE, INTERRUPTED, TRIAL_STREAM, distinct_seeds, require_optuna

if TYPE_CHECKING:
    from optuna.trial import Trial

    from polyrl.agent import Agent
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult


class TrialFailed(Exception):
    """A trial's own error (settings a backend rejects at run time, NaN): the trial is recorded as
    failed with the reason and the study goes on."""


@dataclass(frozen=True)
class StudyJob:
    """What a worker needs to run trials of one study."""

    name: str
    directory: Path
    spec: AgentSpec
    space: SearchSpace
    settings: TuneSettings
    on_iteration_size: Callable[[int, int], None] | None = field(default=None, compare=False)
    """Called with (trial number, env steps per iteration) once a trial's agents are built (in
    the process that runs the trial); the size is also the trial's "iteration_steps" attribute."""


class BoundaryEvaluation(Callback):
    """Ends a train() call at the first iteration reaching `boundary` env steps, after evaluating.

    The evaluation goes into that iteration's record (eval_return_mean, eval_return_std) before
    the loggers after this callback see it, so progress.csv has the values the pruner saw.
    """

    def __init__(self, episodes: int) -> None:
        self.episodes = episodes
        self.boundary = 0
        self.value: float | None = None
        self.std: float | None = None
        self.at_steps = -1

    def evaluate(self, agent: Agent, env_steps: int) -> None:
        """Play the deterministic episodes now and keep their mean and std."""
        result = agent.evaluate(episodes=self.episodes)
        self.value, self.std, self.at_steps = result.return_mean, result.return_std, env_steps

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        if record.env_steps < self.boundary:
            return
        self.evaluate(context.agent, record.env_steps)
        if self.value is not None:
            record.metrics["eval_return_mean"] = float(self.value)
            record.metrics["eval_return_std"] = float(self.std or 0.0)
        context.stop(f"evaluation at {self.boundary:,} env steps")


class TrialConfigLogger(Callback):
    """config.json, written once for the whole trial: a fresh agent trained for the trial's steps.

    A trial trains in several train() calls (one per evaluation); the file describes them as the
    one run they add up to, so `polyrl rerun` trains the seed again in one call.
    """

    def __init__(self, path: Path, config: TrainConfig) -> None:
        self.path = path
        self.config = config
        self.written = False

    def on_train_begin(self, context: TrainContext) -> None:
        if self.written:
            return
        from polyrl.callbacks.loggers import RunConfig
        from polyrl.versions import environment_versions, polyrl_version

        agent = context.agent
        run = RunConfig(
            polyrl_version=polyrl_version(),
            versions=environment_versions(agent.backend_info.library),
            started_at=datetime.now(UTC),
            spec=agent.spec,
            train_config=self.config,
            start_iteration=0,
            start_env_steps=0,
            effective_hyperparameters=agent.effective_hyperparameters(),
        )
        write_text_atomically(self.path, run.model_dump_json(indent=2))
        self.written = True


@dataclass
class Seat:
    """One seed of a trial: its agent, run directory and evaluations."""

    seed: int
    directory: Path
    agent: Agent
    evaluation: BoundaryEvaluation
    callbacks: list[object]
    results: list[TrainResult] = field(default_factory=list)

    def reach(self, boundary: int, steps: int) -> float | None:
        """Train on to `boundary` env steps (unless an iteration passed it already); the evaluation."""
        if self.evaluation.at_steps < boundary:
            self.evaluation.boundary = boundary
            config = TrainConfig(total_steps=steps - self.agent.env_steps)
            self.results.append(self.agent.train(config, callbacks=self.callbacks))
            if self.evaluation.at_steps < boundary:  # the loop ended without an iteration past it
                self.evaluation.evaluate(self.agent, self.agent.env_steps)
        return self.evaluation.value

    def status(self, state: str, plan: RunPlan, seconds: float) -> RunStatus:
        """The seat's status.json content after the trial ended as `state`."""
        records = [record for result in self.results for record in result.records]
        returns = [r.return_mean for r in records if r.return_mean is not None]
        return RunStatus(
            status=state,  # type: ignore[arg-type]
            directory=str(self.directory),
            name=plan.name,
            variant=plan.variant,
            env_steps=self.agent.env_steps,
            iterations=self.agent.iterations,
            wall_seconds=seconds,
            final_return_mean=returns[-1] if returns else None,
            best_return_mean=max(returns) if returns else None,
            eval_return_mean=self.evaluation.value,
            eval_return_std=self.evaluation.std,
        )


def _open_seat(stack: contextlib.ExitStack, plan: RunPlan, directory: Path, episodes: int) -> Seat:
    from polyrl.agent import Agent
    from polyrl.callbacks.loggers import CSVLogger, JSONLinesLogger

    agent = stack.enter_context(Agent(plan.spec))
    evaluation = BoundaryEvaluation(episodes)
    callbacks: list[object] = [
        TrialConfigLogger(directory / CONFIG_FILE, plan.train_config),
        evaluation,  # before the loggers: they write the record with its evaluation
        CSVLogger(directory / PROGRESS_FILE),
        JSONLinesLogger(directory / RECORDS_FILE),
    ]
    assert plan.spec.seed is not None
    return Seat(plan.spec.seed, directory, agent, evaluation, callbacks)


def _reason(exc: BaseException) -> str:
    first = next(iter(str(exc).strip().splitlines()), "")
    return redact_uri(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


def _fail(trial: Trial, exc: BaseException) -> TrialFailed:
    reason = _reason(exc)
    trial.set_user_attr(FAILURE, reason)
    return TrialFailed(reason)


def _plans(
    job: StudyJob, trial: Trial, spec: AgentSpec, seeds: list[int], params: dict[str, Any]
) -> list[RunPlan]:
    config = TrainConfig(total_steps=job.settings.steps)
    plans = []
    for seed in seeds:
        seeded = spec.model_copy()
        seeded.seed = seed
        plans.append(
            RunPlan(
                name=f"{job.name}-trial-{trial.number:04d}",
                variant={**params, "seed": seed},
                spec=seeded,
                train_config=config,
                eval_episodes=job.settings.eval_episodes,
            )
        )
    return plans


def run_trial(trial: Trial, job: StudyJob, worker: int = 0) -> float:
    """Train, evaluate and report one trial; the objective value (mean final evaluation over seeds).

    `worker` (the index of the worker running it) is recorded as the trial's "worker" attribute.

    Raises optuna.TrialPruned when the pruner stops the trial, TrialFailed (after recording the
    reason as the trial's "failure" user attribute and in status.json) when the trial raised,
    and KeyboardInterrupt again after marking the trial's runs interrupted.
    """
    optuna = require_optuna()
    began = time.perf_counter()
    settings = job.settings
    seeds = distinct_seeds(settings.study_seed, (TRIAL_STREAM, trial.number), settings.seeds, set())
    params = job.space.sample(trial)
    names = [f"{trial.number:04d}-seed{seed}" for seed in seeds]
    trial.set_user_attr("seeds", seeds)
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("values", params)  # as the spec got them (Optuna keeps lists as JSON text)
    try:
        spec = with_values(job.spec, params)
    except ValidationError as exc:  # values the space allows one by one but not together
        trial.set_user_attr("directories", [])
        raise _fail(trial, exc) from exc
    trial.set_user_attr("directories", [f"{TRIALS_DIR}/{name}" for name in names])
    directories = [job.directory / TRIALS_DIR / name for name in names]
    plans = _plans(job, trial, spec, seeds, params)
    for plan, directory in zip(plans, directories, strict=True):
        plan.write(directory)
        RunStatus(status="running", directory=str(directory), name=plan.name, variant=plan.variant).write()

    def finish(seats: list[Seat], state: str) -> None:
        seconds = time.perf_counter() - began
        trial.set_user_attr("wall_seconds", seconds)
        for seat, plan in zip(seats, plans, strict=True):
            seat.agent.save(seat.directory / CHECKPOINT_DIR, metadata={"trial": trial.number, "state": state})
            seat.status(state, plan, seconds).write()

    def mark(state: str, error: str | None = None) -> None:
        for plan, directory in zip(plans, directories, strict=True):
            status = RunStatus.read(directory) or RunStatus(
                status="running", directory=str(directory), name=plan.name, variant=plan.variant
            )
            if status.status == "running":
                status.model_copy(
                    update={"status": state, "error": error, "wall_seconds": time.perf_counter() - began}
                ).write()

    with contextlib.ExitStack() as stack:
        try:
            seats = [
                _open_seat(stack, plan, directory, settings.eval_episodes)
                for plan, directory in zip(plans, directories, strict=True)
            ]
            size = max(seat.agent.effective_hyperparameters().iteration_steps for seat in seats)
            trial.set_user_attr("iteration_steps", size)
            if job.on_iteration_size is not None:
                job.on_iteration_size(trial.number, size)
            value = float("nan")
            evaluations: list[float] = []
            for boundary in settings.boundaries:
                values = [seat.reach(boundary, settings.steps) for seat in seats]
                if not is_finite(values):
                    raise FloatingPointError(f"the evaluation at {boundary:,} env steps returned {values}")
                evaluations.append(sum(v for v in values if v is not None) / len(values))
                # "mean" reports the running mean, so the pruner compares like with like and the
                # last report is the objective itself.
                value = (
                    evaluations[-1] if settings.objective == "final" else sum(evaluations) / len(evaluations)
                )
                trial.report(value, boundary)
                # The last evaluation ends the trial anyway: pruning there would only throw away
                # a finished trial's objective (the median pruner compares it with the others').
                if boundary < settings.boundaries[-1] and trial.should_prune():
                    trial.set_user_attr("pruned_step", boundary)
                    trial.set_user_attr("pruned_value", value)
                    finish(seats, "pruned")
                    raise optuna.TrialPruned(f"pruned at {boundary:,} env steps with {value:.4g}")
            finish(seats, "done")
            return value
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED, True)
            mark("interrupted")
            raise
        except Exception as exc:  # the trial's own error: recorded, never the end of the study
            mark("failed", redact_uri(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
            raise _fail(trial, exc) from exc
