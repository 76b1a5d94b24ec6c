"""The one Ray instance a process's RLlib agents share: started lazily, kept light, shut down at exit.

Ray is started on the first agent that needs it, never at import. Locally it runs with the
dashboard off, quiet logs, a bounded number of CPUs and a small object store; with an
`address` polyrl connects to that Ray cluster instead, giving up with RayConnectionError when
it does not answer within backend_options `ray_connect_timeout` (default 30 s). Every agent of
the process then uses the same instance (Ray allows one per process). Algorithms get a
throw-away log directory instead of an empty `~/ray_results/<timestamp>` each.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from polyrl.errors import ConfigurationError
from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT, connect_ray

#: CPUs a local Ray instance gets unless `num_cpus` says otherwise (capped at the machine's).
DEFAULT_MAX_CPUS = 4
#: Bytes of shared memory for Ray's object store when polyrl starts Ray locally.
OBJECT_STORE_BYTES = 128 * 1024 * 1024
_QUIET_LOGGERS = ("ray", "ray.rllib", "ray.tune", "ray.train", "ray.data")


@dataclass
class RayInstance:
    """What polyrl knows about the Ray instance of this process."""

    address: str | None  # None: a local instance polyrl started
    num_cpus: float
    started_by_polyrl: bool


_lock = threading.Lock()
_instance: RayInstance | None = None
_storage_dir: str | None = None


def quiet_logging() -> None:
    """Keep Ray and RLlib at WARNING/ERROR (their INFO banners and API-stack notices are noise)."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _redirect_results_dir() -> None:
    """Point the Trainable's default log root at a temp dir removed at exit (not ~/ray_results)."""
    global _storage_dir
    if _storage_dir is not None:
        return
    from ray.tune.trainable import trainable

    _storage_dir = tempfile.mkdtemp(prefix="polyrl-rllib-")
    trainable.DEFAULT_STORAGE_PATH = _storage_dir
    atexit.register(shutil.rmtree, _storage_dir, True)


def _local_num_cpus(requested: float | None) -> float:
    if requested is not None:
        return float(requested)
    return float(max(1, min(os.cpu_count() or 1, DEFAULT_MAX_CPUS)))


def ensure_ray(
    address: str | None = None,
    num_cpus: float | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> RayInstance:
    """Start (or connect to) Ray once per process and return what is running.

    `address` is a Ray cluster address ("auto", "host:6379", "ray://host:10001"); None joins the
    cluster named by the RAY_ADDRESS variable if set (as `ray.init()` does), else starts a local
    instance with `num_cpus` logical CPUs (default: the machine's, at most 4). An address
    that does not answer as a Ray cluster within `connect_timeout` seconds raises
    RayConnectionError (polyrl.ray_connect). A later agent asking for a different address than
    the running instance gets a ConfigurationError: one process talks to one Ray instance.
    """
    global _instance
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    quiet_logging()
    _redirect_results_dir()
    with _lock:
        if ray.is_initialized():
            if _instance is None:
                # Someone else (the user, a test) started Ray: use it as it is.
                _instance = RayInstance(
                    address=None,
                    num_cpus=float(ray.cluster_resources().get("CPU", 0)),
                    started_by_polyrl=False,
                )
            if address is not None and address != _instance.address:
                where = _instance.address or "a local instance"
                raise ConfigurationError(
                    f"this process is already connected to Ray ({where}); it cannot also connect to "
                    f"{address!r}. Use one address for every rllib agent of a process, or call "
                    "polyrl_rllib.runtime.shutdown() first (it stops every rllib agent's workers)."
                )
            return _instance
        common: dict[str, Any] = dict(
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=False,
        )
        if address is None and os.environ.get("RAY_ADDRESS"):
            # Ray's own convention: with RAY_ADDRESS set, ray.init() joins that cluster (a local
            # instance sized by num_cpus would make ray.init refuse the pair).
            address = os.environ["RAY_ADDRESS"]
        if address is None:
            cpus = _local_num_cpus(num_cpus)
            ray.init(
                num_cpus=cpus,  # type: ignore[arg-type]  # ray annotates int; a float CPU count works
                object_store_memory=OBJECT_STORE_BYTES,
                **common,
            )
        else:
            if num_cpus is not None:
                raise ConfigurationError(
                    "backend_options num_cpus sizes a local Ray instance; with an address the "
                    "cluster's own resources apply (set them with `ray start --num-cpus`)"
                )
            connect_ray(
                address,
                connect_timeout,
                instead="drop backend_options address to start a local Ray instance",
                timeout_setting="backend_options ray_connect_timeout",
                **common,
            )
            cpus = float(ray.cluster_resources().get("CPU", 0))
        _instance = RayInstance(address=address, num_cpus=cpus, started_by_polyrl=True)
        atexit.register(shutdown)
        return _instance


def current() -> RayInstance | None:
    """The Ray instance polyrl uses in this process, if any."""
    return _instance


def shutdown() -> None:
    """Disconnect from Ray (stopping a local instance polyrl started); safe to call twice."""
    global _instance
    with _lock:
        instance, _instance = _instance, None
        if instance is None:
            return
        import ray

        if instance.started_by_polyrl and ray.is_initialized():
            ray.shutdown()
