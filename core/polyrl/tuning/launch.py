"""Where a study's workers run: in this process, in worker processes, or as Ray tasks.

One worker runs in this process (a backend registered only in this process, or an env
callable defined in a script, works then). More workers run as fresh processes
(`python -m polyrl.tuning.worker`), or as Ray tasks on `ray_address`, sharing the study through
its storage; this process then reports each trial as the storage shows it finished.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from polyrl.errors import StudyError
from polyrl.experiments.executors import TICK_SECONDS, ensure_ray, stop_processes
from polyrl.tuning.study import make_storage, quiet_optuna, require_optuna
from polyrl.tuning.trial import StudyJob
from polyrl.tuning.worker import STORAGE_VARIABLE, Announce, ray_worker, work

if TYPE_CHECKING:
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial

WORKERS_DIR = "workers"
#: Lines of a failed worker's output quoted in the error.
LOG_LINES = 20


class FinishedTrials:
    """Announces each trial of a study once, when the storage first shows it finished."""

    def __init__(self, storage: RDBStorage, study: str, announce: Announce) -> None:
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study)
        self.announce = announce
        self.seen: set[int] = {t.number for t in self._finished()}

    def _finished(self) -> list[FrozenTrial]:
        return [t for t in self.storage.get_all_trials(self.study_id) if t.state.is_finished()]

    def poll(self) -> None:
        """Announce the trials that finished since the last poll, in trial-number order."""
        for trial in sorted(self._finished(), key=lambda t: t.number):
            if trial.number not in self.seen:
                self.seen.add(trial.number)
                self.announce(trial)


def _log_tail(path: Path) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").strip().splitlines()[-LOG_LINES:])


def _in_processes(
    root: Path, job: StudyJob, backend: str, storage_url: str, workers: int, watch: FinishedTrials
) -> None:
    logs = job.directory / WORKERS_DIR
    logs.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, STORAGE_VARIABLE: storage_url}
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(workers):
            log = logs / f"worker-{index}.log"
            with log.open("wb") as handle:
                process = subprocess.Popen(
                    [sys.executable, "-m", "polyrl.tuning.worker", str(root), backend, str(index)],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            processes.append((process, log))
        while any(process.poll() is None for process, _ in processes):
            time.sleep(TICK_SECONDS)
            watch.poll()
    finally:  # interrupted: no worker outlives the study's call
        stop_processes([process for process, _ in processes])
    watch.poll()
    failed = [(process.returncode, log) for process, log in processes if process.returncode != 0]
    if failed:
        code, log = failed[0]
        raise StudyError(
            f"{len(failed)} of {workers} tuning worker process(es) of study {job.name!r} failed; the first "
            f"exited with status {code} ({log}), last output:\n{_log_tail(log)}"
        )


def _on_ray(
    root: Path,
    job: StudyJob,
    backend: str,
    storage_url: str,
    workers: int,
    address: str,
    connect_timeout: float,
    watch: FinishedTrials,
) -> None:
    ensure_ray(address, connect_timeout, "tuning study")
    import ray

    task = ray.remote(num_cpus=1, max_calls=1)(ray_worker)
    pending = [task.remote(str(root), backend, index, storage_url) for index in range(workers)]
    errors: list[str] = []
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=TICK_SECONDS)
            for ref in done:
                try:
                    ray.get(ref)
                except Exception as exc:  # one lost worker must not hide the trials of the others
                    errors.append(f"{type(exc).__name__}: {exc}")
            watch.poll()
    finally:  # interrupted: the workers still queued or running on the cluster are cancelled
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
    watch.poll()
    if errors:
        raise StudyError(
            f"{len(errors)} of {workers} tuning worker task(s) of study {job.name!r} failed on the Ray "
            f"cluster; the first: {errors[0]}"
        )


def run_study(
    root: Path,
    job: StudyJob,
    backend: str,
    storage_url: str,
    workers: int,
    ray_address: str | None,
    connect_timeout: float,
    announce: Announce,
) -> None:
    """Run the study's trials on `workers` workers (here, processes, or Ray tasks) until it has them all."""
    require_optuna()
    if ray_address is None and workers == 1:
        work(job, storage_url, 0, parallel=False, announce=announce)
        return
    with quiet_optuna():
        watch = FinishedTrials(make_storage(storage_url), job.name, announce)
        if ray_address is not None:
            _on_ray(root, job, backend, storage_url, workers, ray_address, connect_timeout, watch)
        else:
            _in_processes(root, job, backend, storage_url, workers, watch)
