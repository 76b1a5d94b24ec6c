"""A tuning worker: runs trials of one study until the study has its number of trials.

    python -m polyrl.tuning.worker TUNE_DIR BACKEND WORKER_INDEX

Workers on one study (processes here, Ray tasks, other machines on a shared database) each ask
Optuna for a trial, run it and tell the result. Before asking, a worker takes a lock file in
the study's directory and counts the trials used (finished or running): two workers of one
machine or one shared directory therefore never start more trials than asked. The storage URL
comes from the environment variable POLYRL_TUNE_STORAGE when set (it may hold a password, so
it is never written into tune.json or onto a command line), else from the plan.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from polyrl.tuning.plan import TunePlan, default_storage
from polyrl.tuning.study import (
    fail_crashed_trials,
    make_storage,
    open_study,
    quiet_optuna,
    trials_used,
)
from polyrl.tuning.trial import StudyJob, TrialFailed, run_trial

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial, Trial

STORAGE_VARIABLE = "POLYRL_TUNE_STORAGE"
LOCK_FILE = ".ask.lock"
INTERRUPTED = 130

Announce = Callable[["FrozenTrial"], None]


@contextlib.contextmanager
def ask_lock(path: Path) -> Iterator[Callable[[], None]]:
    """Hold an exclusive lock on `path` until the yielded release() is called or the block ends.

    Where the OS has no fcntl (Windows), there is no lock: workers may then run a trial or two
    more than asked when they finish at the same moment.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield lambda: None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        held = [True]

        def release() -> None:
            if held[0]:
                held[0] = False
                fcntl.flock(handle, fcntl.LOCK_UN)

        try:
            yield release
        finally:
            release()


def study_job(plan: TunePlan, root: Path, backend: str) -> StudyJob:
    """The job of the backend's study in the tune directory `root`."""
    return StudyJob(
        name=plan.study_name(backend),
        directory=plan.study_directory(root, backend),
        spec=plan.study_spec(backend),
        space=plan.space,
        settings=plan.settings,
    )


def work(
    job: StudyJob, storage_url: str, worker: int = 0, parallel: bool = False, announce: Announce | None = None
) -> None:
    """Run trials of the job's study until it has `settings.trials` of them (all workers together)."""
    with quiet_optuna():
        storage = make_storage(storage_url)
        study: Study = open_study(storage, job.name, job.settings, worker, parallel)
        callbacks = [] if announce is None else [lambda _study, trial: announce(trial)]
        while True:
            fail_crashed_trials(study)
            with ask_lock(job.directory / LOCK_FILE) as release:
                if trials_used(study) >= job.settings.trials:
                    return

                def objective(trial: Trial, release: Callable[[], None] = release) -> float:
                    release()  # the trial exists now: other workers may count it and ask theirs
                    return run_trial(trial, job, worker)

                study.optimize(
                    objective,
                    n_trials=1,
                    catch=(TrialFailed,),
                    callbacks=callbacks,
                    gc_after_trial=True,
                )


def storage_for(plan: TunePlan, root: Path) -> str:
    """The storage URL a worker process uses: the environment's, else the plan's default SQLite file."""
    return os.environ.get(STORAGE_VARIABLE) or plan.storage or default_storage(root)


def run_worker(root: str, backend: str, worker: int, storage_url: str | None = None) -> int:
    """Run one worker of the backend's study in `root` (a process's or Ray task's entry point)."""
    directory = Path(root)
    plan = TunePlan.read(directory)
    job = study_job(plan, directory, backend)
    work(job, storage_url or storage_for(plan, directory), worker, parallel=True)
    return worker


def ray_worker(root: str, backend: str, worker: int, storage_url: str) -> int:
    """A Ray task's entry point: run_worker with the storage URL passed along (not through files)."""
    return run_worker(root, backend, worker, storage_url)


def main(argv: list[str]) -> int:
    """Run the worker argv names; exit 0 when the study has its trials, 130 when interrupted."""
    if len(argv) != 3:
        print("usage: python -m polyrl.tuning.worker TUNE_DIR BACKEND WORKER_INDEX", file=sys.stderr)
        return 2
    try:
        run_worker(argv[0], argv[1], int(argv[2]))
    except KeyboardInterrupt:
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
