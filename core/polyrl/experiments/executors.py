"""Where runs execute: a local pool of fresh processes, or Ray tasks on a cluster."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path

from polyrl.errors import ConfigurationError
from polyrl.experiments.plan import RunPlan, RunStatus
from polyrl.experiments.runner import execute_run
from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT, check_connect_timeout, connect_ray, ensure_reachable

TICK_SECONDS = 1.0
GRACE_SECONDS = 2.0
STOP_SECONDS = 10.0
LOG_FILE = "output.log"


def default_workers(runs: int) -> int:
    """One run per core: the small networks of classic-control runs use one core well."""
    return max(1, min(runs, os.cpu_count() or 1))


def _crashed(directory: Path, error: BaseException) -> RunStatus:
    plan = RunPlan.read(directory)
    status = RunStatus(
        status="failed",
        directory=str(directory),
        name=plan.name,
        variant=plan.variant,
        error=f"the run's process died: {type(error).__name__}: {error}",
    )
    status.write()
    return status


def run_local(
    directories: list[Path], workers: int, on_tick: Callable[[], None]
) -> Generator[RunStatus, None, None]:
    """Run each directory's plan in a fresh Python process, `workers` at a time; yield as they end.

    A process per run (`python -m polyrl.experiments.worker DIR`) means no torch, Ray or env
    state leaks between runs, and scripts need no `if __name__ == "__main__"` guard.
    """
    queue = list(directories)
    running: dict[Path, subprocess.Popen[bytes]] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                directory = queue.pop(0)
                with (directory / LOG_FILE).open("wb") as log:
                    running[directory] = subprocess.Popen(
                        [sys.executable, "-m", "polyrl.experiments.worker", str(directory)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
            time.sleep(TICK_SECONDS / 4)
            for directory, process in list(running.items()):
                if process.poll() is not None:
                    del running[directory]
                    yield _ended(directory, process.returncode)
            on_tick()
    finally:  # interrupted (Ctrl-C) or abandoned: no run process outlives the grid
        stop_processes(list(running.values()))


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """Give interrupted processes GRACE_SECONDS to end, then SIGINT, then kill; wait for them all."""
    # Ctrl-C reaches the whole process group and each run then records "interrupted" itself, so
    # runs get GRACE_SECONDS to end on their own before being sent SIGINT (the grid alone was
    # signalled) and then killed; the grid marks whatever still says "running" as interrupted.
    for wait, action in ((GRACE_SECONDS, "interrupt"), (STOP_SECONDS, "kill")):
        deadline = time.monotonic() + wait
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        alive = [process for process in processes if process.poll() is None]
        for process in alive:
            if action == "interrupt" and os.name != "nt":  # Windows has no SIGINT for a child
                process.send_signal(signal.SIGINT)
            else:
                process.kill()
        if not alive:
            return
    for process in processes:
        process.wait()


def _ended(directory: Path, returncode: int) -> RunStatus:
    status = RunStatus.read(directory)
    if status is not None and status.status != "running":
        return status
    log = (directory / LOG_FILE).read_text(errors="replace").strip().splitlines()[-20:]
    detail = "\n".join(log)
    return _crashed(directory, RuntimeError(f"exit status {returncode}; last output:\n{detail}"))


def run_ray(
    directories: list[Path],
    address: str,
    on_tick: Callable[[], None],
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Generator[RunStatus, None, None]:
    """Run each plan as a Ray task (one CPU, a fresh worker process each) on the cluster at `address`.

    The cluster's nodes must see the run directories (one machine, or a shared file system).
    An address that does not answer as a Ray cluster within `connect_timeout` seconds raises
    RayConnectionError before any run starts.
    """
    ensure_ray(address, connect_timeout, "grid")
    import ray

    task = ray.remote(num_cpus=1, max_calls=1)(execute_run)
    pending = {task.remote(str(d)): d for d in directories}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=TICK_SECONDS)
            for ref in done:
                directory = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # a killed worker must not hide the other runs' results
                    yield _crashed(directory, exc)
            on_tick()
    finally:  # interrupted: the runs still queued or running on the cluster are cancelled
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def ensure_ray(address: str, connect_timeout: float, what: str) -> None:
    """Connect this process to the Ray cluster at `address` (or check it already is) to run `what`.

    RayConnectionError if the address does not answer as a Ray cluster within `connect_timeout`
    seconds; ConfigurationError without ray or when connected to another cluster already.
    """
    if importlib.util.find_spec("ray") is None:  # checked without importing: see connect_ray
        raise ConfigurationError(
            f"running a {what} on a Ray cluster needs ray: pip install 'polyrl[rllib]' (or ray)"
        )
    instead = f"drop --ray-address to run the {what} on this machine's process pool"
    timeout_setting = "--ray-connect-timeout (ray_connect_timeout= in Python)"
    running = sys.modules.get("ray")
    if running is not None and running.is_initialized():
        connected = running.get_runtime_context().gcs_address
        if address not in ("auto", connected):
            # An address that does not answer is that first (the same error as from a fresh process).
            timeout = check_connect_timeout(connect_timeout, timeout_setting)
            ensure_reachable(address, timeout, instead=instead, timeout_setting=timeout_setting)
            raise ConfigurationError(
                f"this process is already connected to Ray at {connected}, not {address!r}; run the "
                f"{what} from a fresh process or pass that address"
            )
    else:
        connect_ray(
            address,
            connect_timeout,
            instead=instead,
            timeout_setting=timeout_setting,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
