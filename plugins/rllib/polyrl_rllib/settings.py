"""polyrl's own RLlib options (backend_options keys that are not AlgorithmConfig settings), validated.

`address` (Ray cluster address), `ray_connect_timeout` (seconds to wait for that address to
answer, default 30), `num_env_runners`, `num_learners`, `num_cpus` (CPUs of a local Ray
instance), `torch_threads` (torch intra-op threads of this process, default 1; 0 leaves torch's
setting, as on every backend). `params.build_config` maps everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polyrl import AgentSpec
from polyrl.driverkit import torch_threads_option
from polyrl.errors import ConfigurationError, UnsupportedOptionError
from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT, check_connect_timeout

#: The backend_options keys read here.
POLYRL_OPTIONS = (
    "address",
    "ray_connect_timeout",
    "num_env_runners",
    "num_learners",
    "num_cpus",
    "torch_threads",
)


@dataclass
class Settings:
    """polyrl's own options (not AlgorithmConfig keys), read from backend_options."""

    address: str | None = None
    ray_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    num_env_runners: int = 0
    num_learners: int = 0
    num_cpus: float | None = None
    torch_threads: int = 1


def _positive_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UnsupportedOptionError(f"backend_options.{name} must be an integer >= {minimum}, got {value!r}")
    return value


def read_settings(spec: AgentSpec) -> Settings:
    """polyrl's own options from backend_options, validated."""
    options = spec.backend_options
    settings = Settings()
    if "address" in options:
        address = options["address"]
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise UnsupportedOptionError(
                f"backend_options.address must be a Ray address such as 'auto', '127.0.0.1:6379' or "
                f"'ray://host:10001', got {address!r}"
            )
        settings.address = address.strip() if isinstance(address, str) else None
    if "ray_connect_timeout" in options:
        try:
            timeout = check_connect_timeout(
                options["ray_connect_timeout"], "backend_options.ray_connect_timeout"
            )
        except ConfigurationError as exc:
            raise UnsupportedOptionError(str(exc)) from None
        settings.ray_connect_timeout = timeout
    if "num_env_runners" in options:
        settings.num_env_runners = _positive_int("num_env_runners", options["num_env_runners"])
    if "num_learners" in options:
        settings.num_learners = _positive_int("num_learners", options["num_learners"])
    if "num_cpus" in options:
        cpus = options["num_cpus"]
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus <= 0:
            raise UnsupportedOptionError(f"backend_options.num_cpus must be a positive number, got {cpus!r}")
        settings.num_cpus = float(cpus)
    settings.torch_threads = torch_threads_option(spec)
    if spec.normalize is not None and settings.num_env_runners > 0:
        # The core normalises in this process (its wrapper's running statistics); env runners in
        # other processes would each update a copy of them that the agent never sees.
        raise UnsupportedOptionError(
            f"normalize cannot be combined with backend_options.num_env_runners="
            f"{settings.num_env_runners}: polyrl normalises observations in this process, and RLlib's "
            "remote env runners would keep statistics of their own. Drop num_env_runners (sampling "
            "then runs in this process), or drop normalize"
        )
    if spec.n_envs % max(settings.num_env_runners, 1):
        raise UnsupportedOptionError(
            f"n_envs={spec.n_envs} cannot be split evenly over num_env_runners="
            f"{settings.num_env_runners}; make n_envs a multiple of it"
        )
    return settings
