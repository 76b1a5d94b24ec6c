"""`polyrl.tune`: plan a tuning run (or continue one), run its studies, summarise what they found."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.errors import SearchSpaceError, StudyError, UnsupportedOptionError
from polyrl.plugins import registry
from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT, check_connect_timeout
from polyrl.redact import MASK, redact_uri
from polyrl.run import check_algorithm
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
    iteration_warning,
)
from polyrl.tuning.ready import ready_space
from polyrl.tuning.space import (
    SearchSpace,
    covers,
    field_values,
    first_values,
    fixed_fields,
    read_space,
    space_error,
    space_problems,
    value_at,
    with_values,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from polyrl.tuning.results import StudySummary, TuneReport
    from polyrl.tuning.trial import StudyJob

Report = Callable[[str], None]


def _check_backend(spec: AgentSpec) -> None:
    # A misspelt backend or algorithm fails here, before anything is written, instead of in every
    # run's process. Only declared names are checked: the library may live on the cluster.
    check_algorithm(registry().backend(spec.backend), spec)


def _spec_of(spec: AgentSpec | dict[str, Any] | None) -> AgentSpec:
    if isinstance(spec, AgentSpec):
        return spec
    return AgentSpec.model_validate(spec or {})


def _refuse_seed(spec: AgentSpec) -> None:
    # The trials' seeds derive from the study seed; a spec seed would be stored and never used.
    if spec.seed is not None:
        raise StudyError(
            f"a study takes no seed (seed={spec.seed} from --seed, a --spec file or the Python spec): "
            f"every trial's seeds derive from the study seed; give --study-seed {spec.seed} "
            f'(study_seed={spec.seed} in Python) instead, and drop --seed (or the spec\'s "seed")'
        )


def _require_env(spec: AgentSpec) -> None:
    if "env" not in spec.model_fields_set:
        raise StudyError(
            'a study needs an environment: give --env ID (e.g. --env CartPole-v1), or "env" in the '
            '--spec file (in Python, "env" in the spec)'
        )


def _searched_space(
    space: SearchSpace | dict[str, Any] | None, spec: AgentSpec, fixed: dict[str, Any]
) -> tuple[SearchSpace, list[str]]:
    """The space to search and the problems of a malformed document; the ready space loses the
    fields the user fixed."""
    if space is not None:
        searched, problems = read_space(space)
        if searched is None:
            raise space_error(spec, problems)
        return searched, problems
    ready = ready_space(spec.algorithm)
    kept = {
        path: distribution
        for path, distribution in ready.root.items()
        if not any(covers(name, path) for name in fixed)
    }
    if not kept:
        raise SearchSpaceError(
            f"you fixed every field of polyrl's ready {spec.algorithm} space ({', '.join(ready.root)}), "
            "so nothing is left to search; give the fields to search in a --space file"
        )
    return SearchSpace(kept), []


def _option_names(spec: AgentSpec, space: SearchSpace, text: str) -> list[str]:
    searched = [path.split(".", 1)[1] for path in space.root if path.startswith("backend_options.")]
    keys = {*spec.backend_options, *searched}
    return sorted(
        f"backend_options.{key}" for key in keys if repr(key) in text or f"backend_options.{key}" in text
    )


def _check_backend_options(space: SearchSpace, spec: AgentSpec) -> None:
    """Build one agent (the base spec with the space's first backend_options values) so that the
    backend checks its option names before any trial; skipped when no option is set or searched
    (a build starts Ray on rllib)."""
    paths = [path for path in space.root if path.startswith("backend_options.")]
    if not paths and not spec.backend_options:
        return
    from polyrl.agent import Agent

    first = first_values(space)
    try:
        with Agent(with_values(spec, {path: first[path] for path in paths})):
            pass
    except UnsupportedOptionError as exc:
        text = str(exc)
        if "backend_options" not in text:
            return  # not about option names: the trials meet it with their own values
        named = ", ".join(_option_names(spec, space, text)) or "backend_options"
        raise SearchSpaceError(
            f"{named}: the {spec.backend} backend refused it when polyrl built one agent before any trial "
            f"(the base spec with the space's first values): {text}"
        ) from exc


def plan_tuning(
    name: str,
    spec: AgentSpec | dict[str, Any] | None,
    space: SearchSpace | dict[str, Any] | None,
    backends: list[str] | None,
    settings: TuneSettings,
    storage: str | None,
) -> TunePlan:
    """Validate everything a new tuning run needs; nothing is written. Errors name what is wrong.

    The base spec must name an env and no seed. Fields it fixes are not searched: they are left
    out of the ready space (space=None), and a space of one's own that searches one is refused.
    When backend_options are set or searched, one agent is built per backend to check their names.
    """
    base = _spec_of(spec)
    _refuse_seed(base)
    _require_env(base)
    chosen = list(dict.fromkeys(b.strip().lower() for b in (backends or [base.backend]) if b.strip()))
    if not chosen:
        raise StudyError("no backend given; name one or more, e.g. backends=['sb3', 'tianshou']")
    fixed = fixed_fields(base)
    searched, malformed = _searched_space(space, base, fixed)
    plan = TunePlan(
        name=name,
        spec=base,
        space=searched,
        settings=settings,
        backends=chosen,
        storage=None if storage is None else redact_uri(storage),
        fixed=sorted(fixed),
    )
    for backend in chosen:
        study_spec = plan.study_spec(backend)
        _check_backend(study_spec)
        problems = [*malformed, *space_problems(searched, study_spec, fixed)]
        if problems:
            raise space_error(study_spec, problems)
    for backend in chosen:
        _check_backend_options(searched, plan.study_spec(backend))
    return plan


def _spec_differences(given: AgentSpec, planned: AgentSpec) -> list[str]:
    """`path: given (planned: value)` for each field `given` sets to another value than the plan."""
    document = planned.model_dump(mode="json")
    values = field_values(given.model_dump(mode="json", exclude_unset=True))
    return [
        f"{path}: {json.dumps(value)} (planned: {json.dumps(value_at(document, path))})"
        for path, value in values.items()
        if value != value_at(document, path)
    ]


def _space_differences(given: SearchSpace | dict[str, Any], plan: TunePlan) -> list[str]:
    """`the space's path: given (planned: distribution)` for each path the two spaces differ at."""
    space, problems = read_space(given)
    if space is None or problems:
        raise space_error(plan.spec, problems)
    new, old = space.document(), plan.space.document()
    return [
        f"the space's {path}: {json.dumps(new.get(path))} (planned: {json.dumps(old.get(path))})"
        for path in dict.fromkeys([*old, *new])
        if new.get(path) != old.get(path)
    ]


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
    if spec is not None:
        base = _spec_of(spec)
        _refuse_seed(base)
        differing += _spec_differences(base, plan.spec)
    if space is not None:
        differing += _space_differences(space, plan)
    if backends is not None and [b.strip().lower() for b in backends] != plan.backends:
        differing.append(f"backends {backends} (planned: {plan.backends})")
    if differing:
        raise StudyError(
            f"--resume continues the study as planned in {root / PLAN_FILE}; it was given "
            f"{'; '.join(differing)}: drop those options, or start a new study under another name"
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


def _announcer(report: Report, job: StudyJob) -> Callable[[FrozenTrial], None]:
    from polyrl.tuning.results import trial_row

    def announce(trial: FrozenTrial) -> None:
        row = trial_row(trial)
        value = "-" if row.value is None else f"{row.value:.4g}"
        detail = f" ({row.reason})" if row.reason else ""
        report(f"trial {row.number}: {row.state} {value}{detail}")
        # Trials of worker processes and Ray tasks are seen here, when they have finished.
        if row.iteration_steps is not None and job.on_iteration_size is not None:
            job.on_iteration_size(row.number, row.iteration_steps)

    return announce


class _SizeWarnings:
    """Warns once per study (and not at all after the plan's warning) that a trial's iterations
    are too large for --steps or --eval-every."""

    def __init__(self, settings: TuneSettings, warn: Report, quiet: bool) -> None:
        self.settings = settings
        self.warn = warn
        self.warned: set[str] = set()
        self.quiet = quiet

    def for_study(self, study: str) -> Callable[[int, int], None]:
        def check(number: int, size: int) -> None:
            text = iteration_warning(size, self.settings)
            if text is not None and not self.quiet and study not in self.warned:
                self.warned.add(study)
                self.warn(f"warning: trial {number} of study {study}: {text}")

        return check


def _plan_warnings(plan: TunePlan) -> list[str]:
    """What can be told before any trial: a fixed iteration size too large for the budget."""
    size = plan.spec.iteration_steps
    if size is None or "iteration_steps" in plan.space.root:
        return []
    text = iteration_warning(size, plan.settings)
    return [] if text is None else [f"iteration_steps is fixed at {size}: {text}"]


def _finish_study(
    job: StudyJob,
    plan: TunePlan,
    backend: str,
    storage_url: str,
    wall_seconds: float,
    workers: int,
    ray_address: str | None,
    connect_timeout: float,
) -> tuple[StudySummary, str | None]:
    """The study's summary (with best.json, fresh seeds and plots), and its warning if any."""
    from polyrl.tuning.fresh import evaluate_fresh
    from polyrl.tuning.plots import plot_history, plot_importance
    from polyrl.tuning.results import (
        StudySummary,
        best_row,
        count,
        study_warning,
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
        plots = []
        if any(row.state in ("complete", "pruned") for row in rows):  # else there is nothing to draw
            plots = [
                plot_history(rows, job.directory / HISTORY_PLOT, job.name),
                plot_importance(study, job.directory / IMPORTANCE_PLOT, job.name),
            ]
    shown = redact_uri(storage_url)
    summary = StudySummary(
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
    return summary, study_warning(job.name, rows, plan.settings)


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
    warn: Report | None = None,
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

    `spec` must name the env and no seed (the trials' seeds derive from `study_seed`). The fields
    it sets are fixed: left out of the ready space, refused in a space of one's own.

    Returns the TuneReport (also written as report.json). The searched and fixed fields, then each
    finished trial, are reported as lines through `report` (default: printed); warnings (an
    iteration larger than `steps` or `eval_every`) go through `warn` (default: printed to
    stderr) and into the report's `warnings`. Invalid settings, spaces and specs raise before
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
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    say: Report = report or (lambda text: console.print(text, markup=False))
    tell: Report = warn or (lambda text: errors.print(text, markup=False))
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
    say(f"searched: {', '.join(plan.space.root)}; fixed by you: {', '.join(plan.fixed) or 'nothing'}")
    warnings = _plan_warnings(plan)
    for text in warnings:
        tell(f"warning: {text}")
    sizes = _SizeWarnings(plan.settings, tell, quiet=bool(warnings))
    summaries = []
    for backend in plan.backends:
        job = study_job(plan, root, backend)
        job = dataclasses.replace(job, on_iteration_size=sizes.for_study(job.name))
        job.directory.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        run_study(root, job, backend, storage_url, workers, ray_address, timeout, _announcer(say, job))
        wall = time.perf_counter() - began
        summary, warning = _finish_study(job, plan, backend, storage_url, wall, workers, ray_address, timeout)
        summaries.append(summary)
        warnings += [warning] if warning else []
    result = TuneReport(
        name=plan.name,
        directory=str(root),
        searched=list(plan.space.root),
        fixed=plan.fixed,
        warnings=warnings,
        studies=summaries,
    )
    if len(summaries) > 1:
        result.comparison = result.compare()
    write_json(root / REPORT_FILE, result.model_dump(mode="json"))
    return result
