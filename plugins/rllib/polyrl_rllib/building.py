"""Building the RLlib Algorithm a driver drives, from a polyrl spec.

`build_algorithm` reads the settings, checks the device, starts (or connects to) Ray and checks
it has the CPUs the env runners and learners need, registers the env, sets polyrl's callbacks
and builds the Algorithm under the agent's own random states, explaining an env's failure.
Once the driver holds it, `seed_library_generators` seeds what RLlib leaves unseeded and
`synchronize_learner_thread` makes IMPALA/APPO's background Learner thread repeatable.
"""

from __future__ import annotations

import re
import secrets
import uuid
import warnings
from typing import Any

import numpy as np
from polyrl import AgentSpec
from polyrl.backend import EnvSource
from polyrl.driverkit import GlobalRandomState, apply_torch_threads, resolve_device
from polyrl.errors import ConfigurationError
from ray.tune.registry import register_env

from polyrl_rllib import collect, devices, env_errors, learners, runtime
from polyrl_rllib.params import Settings, build_config, read_settings


def env_name(source: EnvSource) -> str:
    """A name for `source` in Ray's env registry, unique to one agent."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.name)[:60]
    return f"polyrl-{slug}-{uuid.uuid4().hex[:8]}"


def build_algorithm(spec: AgentSpec, env: EnvSource) -> tuple[Any, Settings, str, GlobalRandomState]:
    """The Algorithm built from `spec`, its settings, its env's registered name and its random states."""
    settings = read_settings(spec)
    name = env_name(env)
    device = resolve_device(spec.device)  # DeviceUnavailableError before Ray starts
    config = build_config(spec, name, settings, env.observation_space, device)  # validates too
    apply_torch_threads(settings.torch_threads)
    instance = runtime.ensure_ray(settings.address, settings.num_cpus, settings.ray_connect_timeout)
    check_resources(config, instance, settings)
    devices.check_learner_gpus(config)
    register_env(name, env_errors.EnvCreator(env, name))
    config.callbacks(
        on_episode_end=learners.record_episode,
        # Act only in an env runner set_collecting gave a Collector (polyrl_rllib.collect).
        on_episode_created=collect.on_episode_created,
        on_sample_end=collect.on_sample_end,
    )
    # Unseeded agents still get states of their own (from fresh entropy), not copies of the
    # caller's: RLlib seeds the global generators only when a seed is given.
    random_state = GlobalRandomState(spec.seed if spec.seed is not None else secrets.randbits(63))
    try:
        with warnings.catch_warnings(), random_state.active():
            # RLlib re-registers its gym wrapper id in every env runner; gymnasium warns each time.
            warnings.filterwarnings("ignore", message=".*Overriding environment rllib-")
            algo = config.build_algo()
    except Exception as exc:
        explained = env_errors.explain(exc, "building the RLlib algorithm", name, env)
        if explained is exc:
            raise
        raise explained from env_errors.cause(explained, exc)
    return algo, settings, name, random_state


def check_resources(config: Any, instance: runtime.RayInstance, settings: Settings) -> None:
    """ConfigurationError if the env runners and learners need more CPUs than Ray has."""
    wanted = config.num_env_runners * float(config.num_cpus_per_env_runner)
    if config.num_learners:
        wanted += config.num_learners * float(
            config.num_cpus_per_learner if config.num_cpus_per_learner != "auto" else 1
        )
    if wanted > instance.num_cpus:
        where = instance.address or "the local Ray instance"
        raise ConfigurationError(
            f"{config.num_env_runners} env runner(s) and {config.num_learners} learner(s) need "
            f"{wanted:g} CPUs but {where} has {instance.num_cpus:g}; Ray would wait forever. Lower "
            "num_env_runners/num_learners, give fractions (backend_options "
            "num_cpus_per_env_runner=0.5), or start Ray with more CPUs (backend_options num_cpus "
            "for a local instance)."
        )


def seed_library_generators(algo: Any, buffer: Any, seed: int) -> None:
    """Seed the generators RLlib creates unseeded: the replay buffer's, APPO's batch queue's."""
    if isinstance(getattr(buffer, "rng", None), np.random.Generator):
        buffer.rng = np.random.default_rng(seed)
    group = algo.learner_group
    if group.is_local:
        queue: Any = getattr(group._learner, "_learner_thread_in_queue", None)
        if isinstance(getattr(queue, "_rng", None), np.random.Generator):
            queue._rng = np.random.default_rng(seed)


def synchronize_learner_thread(algo: Any) -> None:
    """IMPALA/APPO with a local Learner: each training_step waits for the Learner's thread.

    RLlib's IMPALA/APPO Learner updates in a background thread even in this process; then
    how many updates ran before the next sample, and which results were reported, depend on
    thread timing, and a checkpoint taken meanwhile misses queued batches. Waiting at the
    end of every training_step (the sampling is in this process anyway unless
    num_env_runners >= 1) makes runs repeatable and checkpoints complete.
    """
    group = algo.learner_group
    if not group.is_local or getattr(group._learner, "_learner_thread", None) is None:
        return
    step = algo.training_step

    def training_step() -> Any:
        value = step()
        wait_for_learners(algo)
        return value

    algo.training_step = training_step


def wait_for_learners(algo: Any) -> None:
    """Let a local IMPALA/APPO learner thread finish its batches (no-op otherwise).

    Then hand the Algorithm the results the thread left behind: RLlib takes one per update
    call, but APPO's thread produces one per use of a batch (2 by default), so they would
    pile up and be reported ever later (and be lost by a checkpoint).
    """
    group = algo.learner_group
    if not group.is_local:
        return
    learner = group._learner
    learners.wait_for_learner_thread(learner)
    results = getattr(learner, "_learner_thread_out_queue", None)
    if results is None:
        return
    from ray.rllib.utils.metrics import LEARNER_RESULTS

    while not results.empty():
        algo.metrics.aggregate(stats_dicts=[results.get_nowait()], key=LEARNER_RESULTS)
