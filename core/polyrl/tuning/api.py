"""`polyrl.tune`: plan a tuning run (or continue one), run its studies, summarise what they found."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.errors import StudyError, UnknownAlgorithmError
from polyrl.plugins import registry
from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT, check_connect_timeout
from polyrl.redact import MASK, redact_uri
from polyrl.spec import AgentSpec
from polyrl.tuning.plan import (
    DEFAULT_ROOT,
    HISTORY_PLOT,
    IMPORTANCE_PLOT,
    PLAN_FILE,
    PLANNED,
    REPORT_FILE,
    TunePlan,
    TuneSettings,
    default_storage,
)
from polyrl.tuning.ready import ready_space
from polyrl.tuning.space import SearchSpace, check_space

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from polyrl.tuning.results import StudySummary, TuneReport
    from polyrl.tuning.trial import StudyJob

Report = Callable[[str], None]


def _check_backend(spec: AgentSpec) -> None:
    # A misspelt backend or algorithm fails before anything is written (as in a grid).
    info = registry().backend(spec.backend)
    if spec.algorithm not in info.algorithms:
        raise UnknownAlgorithmError(
            f"backend {info.name!r} has no algorithm {spec.algorithm!r}; "
            f"it provides {sorted(info.algorithms)}"
        )


def _spec_of(spec: AgentSpec | dict[str, Any] | None) -> AgentSpec:
    if isinstance(spec, AgentSpec):
        return spec
    return AgentSpec.model_validate(spec or {})


def _space_of(space: SearchSpace | dict[str, Any] | None, algorithm: str) -> SearchSpace:
    if space is None:
        return ready_space(algorithm)
    return space if isinstance(space, SearchSpace) else SearchSpace.model_validate(space)


def plan_tuning(
    name: str,
    spec: AgentSpec | dict[str, Any] | None,
    space: SearchSpace | dict[str, Any] | None,
    backends: list[str] | None,
    settings: TuneSettings,
    storage: str | None,
) -> TunePlan:
    """Validate everything a new tuning run needs; nothing is written. Errors name what is wrong."""
    base = _spec_of(spec)
    chosen = list(dict.fromkeys(b.strip().lower() for b in (backends or [base.backend]) if b.strip()))
    if not chosen:
        raise StudyError("no backend given; name one or more, e.g. backends=['sb3', 'tianshou']")
    searched = _space_of(space, base.algorithm)
    plan = TunePlan(
        name=name,
        spec=base,
        space=searched,
        settings=settings,
        backends=chosen,
        storage=None if storage is None else redact_uri(storage),
    )
    for backend in chosen:
        study_spec = plan.study_spec(backend)
        _check_backend(study_spec)
        check_space(searched, study_spec)
    return plan


def _resumed(
    name: str,
    root: Path,
    spec: AgentSpec | dict[str, Any] | None,
    space: SearchSpace | dict[str, Any] | None,
    backends: list[str] | None,
    given: dict[str, Any],
) -> TunePlan:
    """The stored plan, with the settings that may change between sessions; differing planned ones refused."""
    if not (root / PLAN_FILE).is_file():
        raise StudyError(
            f"there is no tuning run to resume in {root} (no {PLAN_FILE}); drop --resume to start it"
        )
    plan = TunePlan.read(root)
    if plan.name != name:
        raise StudyError(
            f"{root} holds the tuning run {plan.name!r}, not {name!r}; resume it by its name "
            f"(polyrl tune {plan.name} --resume --out {root})"
        )
    differing = [
        f"{key}={value!r} (planned: {getattr(plan.settings, key)!r})"
        for key, value in given.items()
        if key in PLANNED and value != getattr(plan.settings, key)
    ]
    if spec is not None and _spec_of(spec).model_dump(mode="json") != plan.spec.model_dump(mode="json"):
        differing.append("a different base spec")
    if space is not None and _space_of(space, plan.spec.algorithm).document() != plan.space.document():
        differing.append("a different search space")
    if backends is not None and [b.strip().lower() for b in backends] != plan.backends:
        differing.append(f"backends {backends} (planned: {plan.backends})")
    if differing:
        raise StudyError(
            f"--resume continues the study as planned in {root / PLAN_FILE}; it was given "
            f"{', '.join(differing)}: drop those options, or start a new study under another name"
        )
    changed = plan.settings.model_copy(update={k: v for k, v in given.items() if k not in PLANNED})
    return plan.model_copy(update={"settings": TuneSettings.model_validate(changed.model_dump())})


def _storage_url(plan: TunePlan, root: Path, storage: str | None) -> str:
    if storage is not None:
        return storage
    if plan.storage is None:
        return default_storage(root)
    if MASK in plan.storage:
        raise StudyError(
            f"this study lives in {plan.storage}, whose password tune.json does not keep; give the "
            "URL again with --storage"
        )
    return plan.storage


def _announcer(report: Report) -> Callable[[FrozenTrial], None]:
    from polyrl.tuning.results import trial_row

    def announce(trial: FrozenTrial) -> None:
        row = trial_row(trial)
        value = "-" if row.value is None else f"{row.value:.4g}"
        detail = f" ({row.reason})" if row.reason else ""
        report(f"trial {row.number}: {row.state} {value}{detail}")

    return announce


def _finish_study(
    job: StudyJob,
    plan: TunePlan,
    backend: str,
    storage_url: str,
    wall_seconds: float,
    workers: int,
    ray_address: str | None,
    connect_timeout: float,
) -> StudySummary:
    from polyrl.tuning.fresh import evaluate_fresh
    from polyrl.tuning.plots import plot_history, plot_importance
    from polyrl.tuning.results import (
        StudySummary,
        best_row,
        count,
        top_rows,
        trial_row,
        used_seeds,
        write_best,
    )
    from polyrl.tuning.study import make_storage, open_study, quiet_optuna

    with quiet_optuna():
        study = open_study(make_storage(storage_url), job.name, job.settings)
        rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
        best = best_row(study)
        fresh = None
        if best is not None and plan.settings.fresh_seeds:
            fresh = evaluate_fresh(
                job, best, used_seeds(study), plan.settings.fresh_seeds, workers, ray_address, connect_timeout
            )
        plots = [
            plot_history(rows, job.directory / HISTORY_PLOT, job.name),
            plot_importance(study, job.directory / IMPORTANCE_PLOT, job.name),
        ]
    shown = redact_uri(storage_url)
    return StudySummary(
        study=job.name,
        backend=backend,
        directory=str(job.directory),
        storage=shown,
        counts=count(rows),
        best=best,
        best_spec=None if best is None else str(write_best(job.directory, best)),
        top=top_rows(rows, plan.settings.top),
        failed=[row for row in rows if row.state == "failed"],
        fresh=fresh,
        plots=[str(path) for path in plots],
        wall_seconds=wall_seconds,
        trial_seconds=sum(row.seconds or 0.0 for row in rows if row.state != "running"),
        dashboard=f"optuna-dashboard {shown}",
    )


def tune(
    name: str,
    spec: AgentSpec | dict[str, Any] | None = None,
    space: SearchSpace | dict[str, Any] | None = None,
    *,
    backends: list[str] | None = None,
    out: str | Path | None = None,
    storage: str | None = None,
    resume: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
    ray_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    report: Report | None = None,
    **settings: Any,
) -> TuneReport:
    """Search the hyperparameters of `spec` with Optuna; one study per backend. See docs/tuning.md.

    `spec` holds the fixed fields (backend, algorithm, env, ...); `space` is {field path:
    distribution} (default: polyrl's ready space for the algorithm); `settings` are TuneSettings
    fields (trials, steps, eval_every, eval_episodes, seeds, fresh_seeds, sampler, pruner, ...).
    Every trial is a run directory under `out` (default runs/tune/NAME); the study is an SQLite
    file there unless `storage` names another database. `resume=True` continues the study as
    planned (only trials, fresh_seeds and top may change). `workers` > 1 runs worker processes
    on the study, as Ray tasks when `ray_address` is given.

    Returns the TuneReport (also written as report.json); each finished trial is reported as a
    line through `report` (default: printed). Invalid settings, spaces and specs raise before
    anything is written: SearchSpaceError names every bad field path.
    """
    from rich.console import Console

    from polyrl.experiments.naming import slug
    from polyrl.experiments.plan import write_json
    from polyrl.tuning.launch import run_study
    from polyrl.tuning.results import TuneReport
    from polyrl.tuning.study import create_study, make_storage, quiet_optuna, require_optuna, study_exists
    from polyrl.tuning.worker import study_job

    require_optuna()
    if not name.strip():
        raise StudyError("a tuning run needs a name, e.g. polyrl.tune('cartpole', ...)")
    if workers < 1:
        raise StudyError(f"workers must be at least 1, got {workers}")
    timeout = check_connect_timeout(ray_connect_timeout)
    root = Path(out) if out is not None else DEFAULT_ROOT / slug(name)
    console = Console(highlight=False, soft_wrap=True)
    say: Report = report or (lambda text: console.print(text, markup=False))
    if resume:
        plan = _resumed(name, root, spec, space, backends, settings)
    else:
        plan = plan_tuning(name, spec, space, backends, TuneSettings.model_validate(settings), storage)
        if (root / PLAN_FILE).is_file():
            raise StudyError(
                f"{root} holds the tuning run {TunePlan.read(root).name!r} already; continue it with "
                "--resume (resume=True), or choose another name or --out directory"
            )
    storage_url = _storage_url(plan, root, storage)
    if storage_url == default_storage(root):
        root.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its directory
    with quiet_optuna():
        database = make_storage(storage_url)
        if not resume:
            for backend in plan.backends:  # every study is checked before any is created
                if study_exists(database, plan.study_name(backend)):
                    raise StudyError(
                        f"the storage {redact_uri(storage_url)} holds a study "
                        f"{plan.study_name(backend)!r} already; continue it with --resume, or choose "
                        "another name"
                    )
            plan.write(root)
            for backend in plan.backends:
                create_study(database, plan.study_name(backend))
    summaries = []
    announce = _announcer(say)
    for backend in plan.backends:
        job = study_job(plan, root, backend)
        job.directory.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        run_study(root, job, backend, storage_url, workers, ray_address, timeout, announce)
        wall = time.perf_counter() - began
        summaries.append(_finish_study(job, plan, backend, storage_url, wall, workers, ray_address, timeout))
    result = TuneReport(name=plan.name, directory=str(root), studies=summaries)
    if len(summaries) > 1:
        result.comparison = result.compare()
    write_json(root / REPORT_FILE, result.model_dump(mode="json"))
    return result
