"""Optuna, the one place polyrl talks to it: storages, samplers, pruners, studies and trial counts.

Optuna is imported inside these functions (`import polyrl` never imports it); without it,
`require_optuna` raises ExtraNotInstalledError naming `polyrl[tune]`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrl.errors import ExtraNotInstalledError, StudyError
from polyrl.redact import redact_uri
from polyrl.spec import SEED_LIMIT
from polyrl.tuning.plan import TuneSettings

if TYPE_CHECKING:
    from optuna import Study
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial

#: Seconds between a running trial's heartbeats, and without one before the trial counts as
#: crashed: its worker died (killed, machine lost) and the next worker or --resume fails it.
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
#: Seconds a worker waits for SQLite's write lock (workers share one file) before giving up.
SQLITE_TIMEOUT = 120
#: User attributes a trial records: why it failed (the trial raised; counts as a finished trial),
#: or that it was interrupted (Ctrl-C; does not count, --resume runs another in its place).
FAILURE = "failure"
INTERRUPTED = "interrupted"
# Streams of the seeds derived from the study seed (trial seeds, fresh seeds, sampler seeds).
TRIAL_STREAM, FRESH_STREAM, SAMPLER_STREAM = 1, 2, 3


def require_optuna() -> ModuleType:
    """The optuna module; ExtraNotInstalledError saying how to install it when it is missing."""
    try:
        import optuna
    except ImportError as exc:
        raise ExtraNotInstalledError(
            "polyrl tune runs Optuna studies, and optuna is not installed: pip install 'polyrl[tune]'"
        ) from exc
    return optuna


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's own log lines and experimental-feature warnings off; polyrl reports each trial itself."""
    optuna = require_optuna()
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def make_storage(url: str) -> RDBStorage:
    """An Optuna RDB storage at `url` with heartbeats (SQLite waits for other workers' writes)."""
    optuna = require_optuna()
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine["connect_args"] = {"timeout": SQLITE_TIMEOUT}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage: RDBStorage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
            )
    except ImportError as exc:  # a database driver (psycopg2, pymysql) that is not installed
        raise ExtraNotInstalledError(
            f"the study storage {redact_uri(url)} needs a database driver that is not installed: {exc}"
        ) from exc
    except Exception as exc:  # SQLAlchemy's errors for a malformed URL or a database that does not answer
        raise StudyError(
            f"cannot open the study storage {redact_uri(url)}: {type(exc).__name__}: {redact_uri(str(exc))}. "
            "Give an SQLAlchemy URL Optuna supports, e.g. sqlite:///study.db or "
            "postgresql://user:password@host/database"
        ) from exc
    return storage


def study_exists(storage: RDBStorage, name: str) -> bool:
    """Whether the storage holds a study called `name`."""
    optuna = require_optuna()
    return name in optuna.get_all_study_names(storage=storage)


def derived_seed(study_seed: int, *key: int) -> int:
    """A seed in [0, 2**32) derived from the study seed and a key (reproducible, uncorrelated)."""
    state = np.random.SeedSequence([study_seed, *key]).generate_state(1, dtype=np.uint64)
    return int(state[0] % SEED_LIMIT)


def distinct_seeds(study_seed: int, stream: tuple[int, ...], count: int, exclude: set[int]) -> list[int]:
    """`count` different seeds from a derived stream, none of them in `exclude`."""
    seeds: list[int] = []
    index = 0
    while len(seeds) < count:
        seed = derived_seed(study_seed, *stream, index)
        index += 1
        if seed not in exclude and seed not in seeds:
            seeds.append(seed)
    return seeds


def make_sampler(settings: TuneSettings, seed: int, parallel: bool) -> BaseSampler:
    """TPE (constant liar when workers share the study, so they do not sample alike) or random."""
    optuna = require_optuna()
    if settings.sampler == "random":
        sampler: BaseSampler = optuna.samplers.RandomSampler(seed=seed)
        return sampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        tpe: BaseSampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=settings.startup_trials, constant_liar=parallel
        )
    return tpe


def make_pruner(settings: TuneSettings) -> BasePruner:
    """The pruner; its steps are env steps, so the resources of the halving pruners are too."""
    optuna = require_optuna()
    pruner: BasePruner
    if settings.pruner == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup
        )
    elif settings.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=settings.eval_every, reduction_factor=3)
    elif settings.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=settings.eval_every, max_resource=settings.steps, reduction_factor=3
        )
    else:
        pruner = optuna.pruners.NopPruner()
    return pruner


def open_study(
    storage: RDBStorage, name: str, settings: TuneSettings, worker: int = 0, parallel: bool = False
) -> Study:
    """The existing study `name`, with this worker's sampler and the study's pruner.

    Each worker and session seeds its sampler differently (from the study seed, the worker
    index and the trials so far), so workers do not draw the same parameters.
    """
    optuna = require_optuna()
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError as exc:
        raise StudyError(f"the storage holds no study {name!r}") from exc
    existing = len(storage.get_all_trials(study_id, deepcopy=False))
    seed = derived_seed(settings.study_seed, SAMPLER_STREAM, worker, existing)
    study: Study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(settings, seed, parallel),
        pruner=make_pruner(settings),
    )
    return study


def create_study(storage: RDBStorage, name: str) -> None:
    """Create the (maximising) study `name`; StudyError if the storage holds one already."""
    optuna = require_optuna()
    try:
        optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=False)
    except optuna.exceptions.DuplicatedStudyError as exc:
        raise StudyError(
            f"the storage already holds a study {name!r}; continue it with --resume "
            "(resume=True in Python), or choose another name"
        ) from exc


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Whether a trial uses up one of the study's trials.

    Finished (complete, pruned, failed by its own error) and running trials do; trials failed
    by a Ctrl-C or a crash (no failure of their own recorded) do not: --resume replaces them.
    """
    state = trial.state.name
    if state in ("COMPLETE", "PRUNED", "RUNNING", "WAITING"):
        return True
    return state == "FAIL" and FAILURE in trial.user_attrs


def trials_used(study: Study) -> int:
    """How many of the study's trials are used up (see counts_toward_budget)."""
    return sum(counts_toward_budget(trial) for trial in study.get_trials(deepcopy=False))


def fail_crashed_trials(study: Study) -> None:
    """Mark trials whose worker stopped sending heartbeats as failed (Optuna's fail_stale_trials)."""
    optuna = require_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def trial_state(trial: FrozenTrial) -> str:
    """A trial's state as polyrl reports it: complete, pruned, failed, interrupted or running."""
    state = trial.state.name.lower()
    if state == "fail":
        return "failed" if FAILURE in trial.user_attrs else "interrupted"
    return "running" if state == "waiting" else state
