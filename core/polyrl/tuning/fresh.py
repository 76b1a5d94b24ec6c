"""The chosen spec trained again on fresh seeds: does the best trial's value hold on seeds it never saw?

A trial's value is the best of many draws, so it flatters the spec that won. Each fresh seed is
a grid run (plan.json, then `execute_run`: train for the study's steps, then the same
deterministic evaluation) in study_dir/fresh/TRIAL-seedS/; runs finished earlier for the same
spec are reused, so --resume does not train them twice.
"""

from __future__ import annotations

import math
from pathlib import Path

from polyrl.config import TrainConfig
from polyrl.experiments.executors import run_local, run_ray
from polyrl.experiments.plan import RunPlan, RunStatus
from polyrl.experiments.runner import execute_run
from polyrl.tuning.plan import FRESH_DIR
from polyrl.tuning.results import FreshEvaluation, TrialRow
from polyrl.tuning.study import FRESH_STREAM, distinct_seeds
from polyrl.tuning.trial import StudyJob


def _finished(directory: Path, plan: RunPlan) -> RunStatus | None:
    try:
        stored = RunPlan.read(directory)
    except (OSError, ValueError):
        return None
    status = RunStatus.read(directory)
    same = stored.model_dump(mode="json") == plan.model_dump(mode="json")
    return status if same and status is not None and status.status == "done" else None


def evaluate_fresh(
    job: StudyJob,
    best: TrialRow,
    used: set[int],
    count: int,
    workers: int,
    ray_address: str | None,
    connect_timeout: float,
) -> FreshEvaluation:
    """Train the best trial's spec on `count` seeds outside `used`; their final evaluations."""
    source = RunPlan.read(job.directory / best.directories[0])
    seeds = distinct_seeds(job.settings.study_seed, (FRESH_STREAM,), count, used)
    config = TrainConfig(total_steps=job.settings.steps)
    runs: dict[Path, RunPlan] = {}
    for seed in seeds:
        spec = source.spec.model_copy()
        spec.seed = seed
        if not isinstance(job.spec.env, str):
            spec.env = job.spec.env  # a callable passed in Python works in this process
        plan = RunPlan(
            name=f"{job.name}-fresh-{best.number:04d}",
            variant={**best.params, "seed": seed},
            spec=spec,
            train_config=config,
            eval_episodes=job.settings.eval_episodes,
        )
        runs[job.directory / FRESH_DIR / f"{best.number:04d}-seed{seed}"] = plan
    statuses: dict[Path, RunStatus] = {}
    todo = []
    for directory, plan in runs.items():
        done = _finished(directory, plan)
        if done is not None:
            statuses[directory] = done
        else:
            plan.write(directory)
            todo.append(directory)
    if todo and ray_address is not None:
        statuses.update(
            {Path(s.directory): s for s in run_ray(todo, ray_address, lambda: None, connect_timeout)}
        )
    elif todo and workers > 1:
        statuses.update(
            {Path(s.directory): s for s in run_local(todo, min(workers, len(todo)), lambda: None)}
        )
    else:
        statuses.update({directory: execute_run(directory, runs[directory]) for directory in todo})
    ordered = [statuses[directory] for directory in runs]
    returns = [s.eval_return_mean if s.status == "done" else None for s in ordered]
    values = [value for value in returns if value is not None and math.isfinite(value)]
    mean = sum(values) / len(values) if values else None
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) if mean is not None else None
    return FreshEvaluation(
        trial=best.number,
        seeds=seeds,
        returns=returns,
        mean=mean,
        std=std,
        directories=[str(directory.relative_to(job.directory)) for directory in runs],
        errors=[next(iter((s.error or "").splitlines()), "") for s in ordered if s.status != "done"],
    )
