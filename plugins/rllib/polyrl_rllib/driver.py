"""RllibDriver: a polyrl BackendDriver over an RLlib Algorithm (new API stack).

One polyrl iteration is one `algo.train()`. Acting goes through the RLModule's inference
(deterministic) or exploration (stochastic) forward pass and its action distribution classes,
with continuous actions rescaled into the action space as RLlib's NormalizeAndClipActions
connector does. Checkpoints are RLlib's own format (`Algorithm.save_to_path`) in `algorithm/`,
plus what RLlib leaves out of it, without pickle: the replay buffer (`replay.py`), the trainable
parameters RLlib keeps outside its modules (SAC's entropy temperature), the Learner counters that
drive target-network updates and the adaptive KL coefficient, and the agent's random states.
"""

from __future__ import annotations

import functools
import json
import math
import re
import secrets
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from polyrl import AgentSpec, PolyrlError
from polyrl.backend import BackendDriver, EffectiveHyperparameters, EnvSource, IterationReport
from polyrl.driverkit import (
    GlobalRandomState,
    apply_torch_threads,
    optimizer_learning_rate,
    optimizer_parameters,
    set_optimizer_learning_rate,
)
from polyrl.errors import ConfigurationError, CorruptCheckpointError, EnvironmentCreationError
from polyrl.torch_layers import describe_layers
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.schedules.scheduler import Scheduler
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action
from ray.tune.registry import register_env

from polyrl_rllib import replay, runtime
from polyrl_rllib.params import (
    ON_POLICY,
    Settings,
    build_config,
    iteration_steps,
    read_settings,
)

CHECKPOINT_DIR = "algorithm"
STATE_FILE = "polyrl_rllib.json"
PARAMETERS_FILE = "polyrl_parameters.npz"
ENV_RUNNER_FILE = "polyrl_env_runner.npz"
PENDING_WEIGHTS = "polyrl_pending_weights"
EPISODES_KEY = "polyrl_episodes"

# RLlib learner result keys -> polyrl's common loss names
_LOSSES = {
    "total_loss": "loss",
    "policy_loss": "policy_loss",
    "pi_loss": "policy_loss",
    "vf_loss": "value_loss",
    "qf_loss": "q_loss",
}
_METRICS = {
    "entropy": "entropy",
    "mean_kl_loss": "kl",
    "curr_kl_coeff": "kl_coeff",
    "vf_explained_var": "explained_variance",
    "alpha_loss": "ent_coef_loss",
    "alpha_value": "ent_coef",
    "qf_mean": "q_mean",
    "td_error_mean": "td_error_mean",
    "num_module_steps_trained": "steps_trained",
}


class EnvRunnerError(PolyrlError, RuntimeError):
    """The environment raised inside an RLlib env runner; names the env and the original error."""


class _EnvFailure(Exception):
    """Raised by the guard wrapper in the env runner; carries the env name and the original error."""

    def __init__(self, env_name: str, where: str, error: BaseException) -> None:
        self.env_name = env_name
        self.where = where
        self.error_type = type(error).__name__
        self.error_text = str(error)
        super().__init__(f"env {env_name!r} raised in {where}: {self.error_type}: {self.error_text}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray pickles exceptions across processes; keep the readable parts only.
        return (_rebuild_failure, (self.env_name, self.where, self.error_type, self.error_text))


def _rebuild_failure(env_name: str, where: str, error_type: str, error_text: str) -> _EnvFailure:
    failure = _EnvFailure.__new__(_EnvFailure)
    failure.env_name, failure.where = env_name, where
    failure.error_type, failure.error_text = error_type, error_text
    Exception.__init__(failure, f"env {env_name!r} raised in {where}: {error_type}: {error_text}")
    return failure


#: Ray internal-KV key prefix where a failing env leaves its description: RLlib ends a remote env
#: runner process with sys.exit(1) on any exception, so the exception itself never reaches us.
_FAILURE_KEY = "polyrl/env-failure/"


def _report_failure(key: str, failure: _EnvFailure) -> None:
    """Leave the failure where the driver finds it even if the env runner process dies next."""
    try:
        import ray
        from ray.experimental.internal_kv import _internal_kv_put

        if ray.is_initialized():
            record = {"env": failure.env_name, "where": failure.where, "type": failure.error_type,
                      "text": failure.error_text}  # fmt: skip
            _internal_kv_put(_FAILURE_KEY + key, json.dumps(record).encode(), overwrite=True)
    except Exception:  # best effort: the exception itself is still raised
        pass


def _reported_failure(key: str) -> _EnvFailure | None:
    """The failure an env runner reported under `key`, if any."""
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(_FAILURE_KEY + key)
    except Exception:  # no Ray, no report
        return None
    if not raw:
        return None
    record = json.loads(raw)
    return _rebuild_failure(record["env"], record["where"], record["type"], record["text"])


class _GuardedEnv(gym.Wrapper):
    """Re-raises any exception of reset/step as an _EnvFailure naming the env (chained)."""

    def __init__(self, env: gym.Env, name: str, key: str) -> None:
        super().__init__(env)
        self._polyrl_name = name
        self._polyrl_key = key

    def _failed(self, where: str, exc: Exception) -> _EnvFailure:
        failure = _EnvFailure(self._polyrl_name, where, exc)
        _report_failure(self._polyrl_key, failure)
        return failure

    def reset(self, **kwargs: Any) -> Any:
        try:
            return self.env.reset(**kwargs)
        except Exception as exc:
            raise self._failed("reset()", exc) from exc

    def step(self, action: Any) -> Any:
        try:
            return self.env.step(action)
        except Exception as exc:
            raise self._failed("step()", exc) from exc


class _EnvCreator:
    """What Ray's env registry calls in every env runner: builds the polyrl env, guarded."""

    def __init__(self, source: EnvSource, key: str) -> None:
        self.source = source
        self.key = key

    def __call__(self, env_config: Any = None) -> gym.Env:
        try:
            env = self.source.make()
        except Exception as exc:
            failure = _EnvFailure(self.source.name, "creation", exc)
            _report_failure(self.key, failure)
            if isinstance(exc, EnvironmentCreationError):
                raise
            raise failure from exc
        return _GuardedEnv(env, self.source.name, self.key)


def _record_episode(*, episode: Any, metrics_logger: Any, prev_episode_chunks: Any = (), **_: Any) -> None:
    """RLlib on_episode_end callback: log (return, length) of the whole episode, unreduced."""
    chunks = [*(prev_episode_chunks or ()), episode]
    total = float(sum(chunk.get_return() for chunk in chunks))
    # Not sum(len(chunk)): with a local env runner PPO's learner connector appends one artificial
    # (zero-reward) step to truncated chunks in place, which would count once per cut.
    length = int(episode.t - chunks[0].t_started)
    metrics_logger.log_value(EPISODES_KEY, {"return": total, "length": length}, reduce="item_series")


def _episodes(logged: Any) -> list[tuple[float, int]]:
    """The episodes RLlib's item_series reduced to: NaN for none, the bare item for one, else a list."""
    if isinstance(logged, dict):
        logged = [logged]
    if not isinstance(logged, list | tuple):
        return []
    return [(float(item["return"]), int(item["length"])) for item in logged]


def _set_learner_lrs(learner: Any, rates: dict[str, float]) -> None:
    """Set the named optimizers' learning rates and make RLlib's lr schedulers keep them."""
    for name, optimizer in learner.get_optimizers_for_module(DEFAULT_MODULE_ID):
        if name not in rates:
            continue
        set_optimizer_learning_rate([optimizer], rates[name])
        # The Learner re-applies its scheduler after every update; replace it or the change is undone.
        learner._optimizer_lr_schedules[optimizer] = Scheduler(
            fixed_value_or_schedule=rates[name], framework="torch", device=learner._device
        )


def _learner_lrs(learner: Any) -> dict[str, float]:
    return {
        name: optimizer_learning_rate([optimizer])
        for name, optimizer in learner.get_optimizers_for_module(DEFAULT_MODULE_ID)
    }


def _learner_optimizers(learner: Any) -> list[Any]:
    """The Learner's torch optimizers of the policy module, in RLlib's (stable) order."""
    return [optimizer for _, optimizer in learner.get_optimizers_for_module(DEFAULT_MODULE_ID)]


def _learner_parameters(learner: Any) -> dict[str, np.ndarray]:
    """What the Learner's optimizers update (SAC: also the entropy temperature log_alpha)."""
    return optimizer_parameters(_learner_optimizers(learner))


def _set_learner_parameters(learner: Any, values: dict[str, np.ndarray]) -> list[str]:
    """Copy saved values into the tensors the optimizers update; the names that did not fit."""
    current = _learner_parameters(learner)
    wrong = sorted(set(current) ^ set(values))
    wrong += [name for name in current if name in values and values[name].shape != current[name].shape]
    if wrong:
        return wrong
    tensors: list[Any] = []
    seen: set[int] = set()
    for optimizer in _learner_optimizers(learner):  # the order optimizer_parameters names them in
        for group in optimizer.param_groups:
            for tensor in group["params"]:
                if id(tensor) not in seen:
                    seen.add(id(tensor))
                    tensors.append(tensor)
    with torch.no_grad():
        for tensor, name in zip(tensors, current, strict=True):
            tensor.copy_(torch.from_numpy(np.array(values[name])))
    return []


#: Learner attributes that are plain counters RLlib's checkpoints leave out although schedules
#: depend on them: the env-step count of the last target-network update (DQN/SAC, APPO).
_LEARNER_COUNTERS = ("last_update_ts_by_mid", "_last_update_ts_by_mid")


def _learner_extras(learner: Any) -> dict[str, Any]:
    """Learner state outside RLlib's checkpoint: target-update counters, adaptive KL coefficients."""
    extras: dict[str, Any] = {}
    for name in _LEARNER_COUNTERS:
        counters = getattr(learner, name, None)
        if isinstance(counters, dict):
            extras[name] = {str(module): int(value) for module, value in counters.items()}
    kl = getattr(learner, "curr_kl_coeffs_per_module", None)
    if isinstance(kl, dict):
        extras["kl_coeffs"] = {str(module): float(value.item()) for module, value in kl.items()}
    queue = getattr(learner, "_learner_thread_in_queue", None)
    rng = getattr(queue, "_rng", None)
    if isinstance(rng, np.random.Generator):
        extras["circular_buffer_rng"] = rng.bit_generator.state
    return extras


def _set_learner_extras(learner: Any, extras: dict[str, Any]) -> None:
    for name in _LEARNER_COUNTERS:
        counters = getattr(learner, name, None)
        if isinstance(counters, dict) and name in extras:
            counters.update({module: int(value) for module, value in extras[name].items()})
    kl = getattr(learner, "curr_kl_coeffs_per_module", None)
    if kl is not None and "kl_coeffs" in extras:
        for module, value in extras["kl_coeffs"].items():
            kl[module].data.fill_(float(value))  # a LambdaDefaultDict builds missing entries
    queue = getattr(learner, "_learner_thread_in_queue", None)
    rng = getattr(queue, "_rng", None)
    if isinstance(rng, np.random.Generator) and "circular_buffer_rng" in extras:
        rng.bit_generator.state = extras["circular_buffer_rng"]


# -- IMPALA/APPO: the Learner's background thread ----------------------------------------------
#: Seconds to wait for the IMPALA/APPO learner thread to finish the batches of an iteration.
LEARNER_THREAD_TIMEOUT = 600.0


def _circular_buffer_waiting(queue: Any, thread: Any) -> bool:
    """Whether APPO's learner thread is idle in CircularBuffer.get's wait loop (nothing to take).

    The loop is `while len(self) == 0: time.sleep(...)`; the thread's innermost Python frame then
    is `get` on one of those two lines. Taking a batch and updating happen past them.
    """
    import inspect

    frame = sys._current_frames().get(thread.ident)
    get = getattr(type(queue), "get", None)
    if frame is None or get is None or frame.f_code is not get.__code__:
        return False
    lines, first = inspect.getsourcelines(get)
    waiting = {first + i for i, text in enumerate(lines) if "len(self) == 0" in text or "time.sleep" in text}
    return frame.f_lineno in waiting


def _wait_for_learner_thread(learner: Any) -> None:
    """Block until IMPALA/APPO's learner thread has applied every batch it was given.

    RLlib's IMPALA/APPO Learner updates in a background thread, even locally; without this an
    iteration could end (and be saved, and its parameters read) with batches still queued.
    """
    thread = getattr(learner, "_learner_thread", None)
    queue = getattr(learner, "_learner_thread_in_queue", None)
    if thread is None or queue is None or not thread.is_alive():
        return

    def idle() -> bool:
        if hasattr(queue, "unfinished_tasks"):  # queue.Queue: task_done() follows each update
            return queue.unfinished_tasks == 0
        return queue.qsize() == 0 and _circular_buffer_waiting(queue, thread)

    deadline = time.monotonic() + LEARNER_THREAD_TIMEOUT
    while not idle():
        if not thread.is_alive():
            raise RuntimeError("RLlib's learner thread stopped with batches left to learn from")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"RLlib's learner thread did not finish its batches in {LEARNER_THREAD_TIMEOUT:g} s"
            )
        time.sleep(0.0005)


def _learner_thread_state(learner: Any) -> dict[str, Any]:
    """IMPALA/APPO learner-thread counters (updates towards the next weights snapshot) and APPO's
    circular batch buffer position; {} for other Learners."""
    if getattr(learner, "_learner_thread", None) is None:
        return {}
    state: dict[str, Any] = {
        name: int(getattr(learner, name))
        for name in ("_submitted_updates", "_num_updates")
        if hasattr(learner, name)
    }
    queue = getattr(learner, "_learner_thread_in_queue", None)
    if not hasattr(queue, "unfinished_tasks") and queue is not None:
        state["circular_buffer"] = {
            name: int(getattr(queue, name))
            for name in ("_offset", "_num_added", "_total_puts", "_total_gets", "_total_dropped")
            if hasattr(queue, name)
        }
    return state


def _set_learner_thread_state(learner: Any, state: dict[str, Any]) -> None:
    for name in ("_submitted_updates", "_num_updates"):
        if name in state and hasattr(learner, name):
            setattr(learner, name, int(state[name]))
    queue = getattr(learner, "_learner_thread_in_queue", None)
    for name, value in state.get("circular_buffer", {}).items():
        if hasattr(queue, name):
            setattr(queue, name, int(value))


def _pending_weights(learner: Any) -> Any:
    """The weights snapshot IMPALA/APPO's learner thread left for the next broadcast, if any.

    The thread snapshots the module every `broadcast_interval` updates (1 by default); the
    Algorithm takes the snapshot at its next update call and sends it to the env runners, which
    act with it until the next one: the env runners' weights lag the Learner's.
    """
    import ray

    pending = getattr(learner, "_learner_state_queue", None)
    if pending is None or pending.empty():
        return None
    snapshot = dict(pending.queue[0])
    for key, value in snapshot.items():
        if isinstance(value, ray.ObjectRef):
            snapshot[key] = ray.get(value)
    return snapshot


def _set_pending_weights(learner: Any, snapshot: dict[str, Any]) -> None:
    import ray
    from ray.rllib.core import COMPONENT_RL_MODULE

    pending = getattr(learner, "_learner_state_queue", None)
    if pending is None:
        return
    snapshot = dict(snapshot)
    if COMPONENT_RL_MODULE in snapshot:
        snapshot[COMPONENT_RL_MODULE] = ray.put(snapshot[COMPONENT_RL_MODULE])
    while not pending.empty():
        pending.get_nowait()
    pending.put_nowait(snapshot)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its causes and contexts (through Ray's task errors' `cause`)."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return seen


def _find(exc: BaseException, kind: type) -> BaseException | None:
    """The first exception of `kind` in the chain of `exc`."""
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _env_name(source: EnvSource) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.name)[:60]
    return f"polyrl-{slug}-{uuid.uuid4().hex[:8]}"


class RllibDriver(BackendDriver):
    """Drives one RLlib Algorithm: one polyrl iteration is one algo.train()."""

    def __init__(
        self,
        spec: AgentSpec,
        env: EnvSource,
        algo: Any,
        settings: Settings,
        env_name: str,
        random_state: GlobalRandomState,
    ) -> None:
        self.spec = spec
        self.env_name = env_name  # the name registered with Ray's env registry
        self.env_source = env
        self.algo = algo
        self.settings = settings
        # RLlib draws exploration, minibatches and SAC's noise from the process-global Python,
        # NumPy and torch generators: this agent's own states, swapped in around every call.
        self._random = random_state
        ent_coef = spec.sac.ent_coef if spec.algorithm == "sac" and spec.sac is not None else None
        self._frozen_alpha = ent_coef not in (None, "auto")
        self._skip_lr = ("alpha",) if self._frozen_alpha else ()

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def _build(cls, spec: AgentSpec, env: EnvSource) -> RllibDriver:
        settings = read_settings(spec)
        env_name = _env_name(env)
        config = build_config(spec, env_name, settings)  # validates before Ray starts
        apply_torch_threads(settings.torch_threads)
        instance = runtime.ensure_ray(settings.address, settings.num_cpus)
        cls._check_resources(config, instance, settings)
        register_env(env_name, _EnvCreator(env, env_name))
        config.callbacks(on_episode_end=_record_episode)
        # Unseeded agents still get states of their own (from fresh entropy), not copies of the
        # caller's: RLlib seeds the global generators only when a seed is given.
        random_state = GlobalRandomState(spec.seed if spec.seed is not None else secrets.randbits(63))
        try:
            with warnings.catch_warnings(), random_state.active():
                # RLlib re-registers its gym wrapper id in every env runner; gymnasium warns each time.
                warnings.filterwarnings("ignore", message=".*Overriding environment rllib-")
                algo = config.build_algo()
        except Exception as exc:
            explained = cls._explain(exc, "building the RLlib algorithm", env_name, env)
            if explained is exc:
                raise
            raise explained from exc
        driver = cls(spec, env, algo, settings, env_name, random_state)
        if spec.seed is not None:
            driver._seed_library_generators(spec.seed)
        driver._synchronize_learner_thread()
        return driver

    def _synchronize_learner_thread(self) -> None:
        """IMPALA/APPO with a local Learner: each training_step waits for the Learner's thread.

        RLlib's IMPALA/APPO Learner updates in a background thread even in this process; then
        how many updates ran before the next sample, and which results were reported, depend on
        thread timing, and a checkpoint taken meanwhile misses queued batches. Waiting at the
        end of every training_step (the sampling is in this process anyway unless
        num_env_runners >= 1) makes runs repeatable and checkpoints complete.
        """
        group = self.algo.learner_group
        if not group.is_local or getattr(group._learner, "_learner_thread", None) is None:
            return
        step = self.algo.training_step

        def training_step() -> Any:
            value = step()
            self._wait_for_learners()
            return value

        self.algo.training_step = training_step

    def _seed_library_generators(self, seed: int) -> None:
        """Seed the generators RLlib creates unseeded: the replay buffer's, APPO's batch queue's."""
        buffer = self._replay_buffer()
        if isinstance(getattr(buffer, "rng", None), np.random.Generator):
            buffer.rng = np.random.default_rng(seed)
        group = self.algo.learner_group
        if group.is_local:
            queue: Any = getattr(group._learner, "_learner_thread_in_queue", None)
            if isinstance(getattr(queue, "_rng", None), np.random.Generator):
                queue._rng = np.random.default_rng(seed)

    def _replay_buffer(self) -> Any:
        """The Algorithm's local replay buffer (DQN/SAC), else None."""
        if self.spec.algorithm in ON_POLICY:
            return None
        return getattr(self.algo, "local_replay_buffer", None)

    def _wait_for_learners(self) -> None:
        """Let a local IMPALA/APPO learner thread finish its batches (no-op otherwise).

        Then hand the Algorithm the results the thread left behind: RLlib takes one per update
        call, but APPO's thread produces one per use of a batch (2 by default), so they would
        pile up and be reported ever later (and be lost by a checkpoint).
        """
        group = self.algo.learner_group
        if not group.is_local:
            return
        learner = group._learner
        _wait_for_learner_thread(learner)
        results = getattr(learner, "_learner_thread_out_queue", None)
        if results is None:
            return
        from ray.rllib.utils.metrics import LEARNER_RESULTS

        while not results.empty():
            self.algo.metrics.aggregate(stats_dicts=[results.get_nowait()], key=LEARNER_RESULTS)

    def _on_learners(self, function: Any) -> list[Any]:
        """`function(learner)` on the local Learner, or on every remote one (their results)."""
        group = self.algo.learner_group
        if group.is_local:
            return [function(group._learner)]
        return [result.get() for result in group.foreach_learner(function)]

    @staticmethod
    def _check_resources(config: Any, instance: runtime.RayInstance, settings: Settings) -> None:
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

    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> RllibDriver:
        """Build a fresh RLlib Algorithm from the spec (starting Ray on first use)."""
        return cls._build(spec, env)

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> RllibDriver:
        """Rebuild the Algorithm from the spec and restore RLlib's checkpoint into it."""
        checkpoint = directory / CHECKPOINT_DIR
        state_file = directory / STATE_FILE
        if not checkpoint.is_dir() or not state_file.is_file():
            raise CorruptCheckpointError(
                f"{directory} has no {CHECKPOINT_DIR}/ and {STATE_FILE}: not an rllib checkpoint"
            )
        driver = cls._build(spec, env)
        try:
            driver.algo.restore_from_path(checkpoint.absolute())
            state = json.loads(state_file.read_text())
            # The optimizers' state came back with the checkpoint; RLlib's lr schedulers (built from
            # the spec's rate) would overwrite it at the next update, so re-apply the saved rates.
            driver._apply_learning_rates({k: float(v) for k, v in state.get("learning_rates", {}).items()})
            driver._restore_polyrl_state(directory, state)
        except Exception as exc:
            driver.close()
            if isinstance(exc, CorruptCheckpointError):
                raise
            raise CorruptCheckpointError(
                f"cannot restore the rllib checkpoint in {directory}: {type(exc).__name__}: {exc}"
            ) from exc
        return driver

    def _restore_polyrl_state(self, directory: Path, state: dict[str, Any]) -> None:
        """What polyrl saves next to RLlib's checkpoint: parameters, Learner counters, buffer, RNGs."""
        parameters = directory / PARAMETERS_FILE
        if parameters.is_file():
            with np.load(parameters, allow_pickle=False) as saved:
                values = {name: saved[name] for name in saved.files}
            for wrong in self._on_learners(functools.partial(_set_learner_parameters, values=values)):
                if wrong:
                    raise CorruptCheckpointError(
                        f"{parameters} does not fit this agent's optimizers (spec changed?): {wrong[:5]}"
                    )
        extras = state.get("learner", {})
        if extras:
            self._on_learners(functools.partial(_set_learner_extras, extras=extras))
        buffer = self._replay_buffer()
        if buffer is not None and replay.has_state(directory):
            tree, extra, places = replay.read_state(directory)
            buffer.set_state(tree)
            replay.restore_spaces(buffer, places, self._spaces())
            if "rng" in extra and isinstance(getattr(buffer, "rng", None), np.random.Generator):
                buffer.rng.bit_generator.state = extra["rng"]
        self._random.load(directory)
        counters = getattr(self.algo, "_counters", None)
        if isinstance(counters, dict):
            counters.update({k: int(v) for k, v in state.get("counters", {}).items()})
        group = self.algo.learner_group
        if group.is_local:
            _set_learner_thread_state(group._learner, state.get("learner_thread", {}))
            if replay.has_state(directory, PENDING_WEIGHTS):
                snapshot, _, _ = replay.read_state(directory, PENDING_WEIGHTS)
                _set_pending_weights(group._learner, snapshot)
        arrays: dict[str, np.ndarray] = {}
        if (directory / ENV_RUNNER_FILE).is_file():
            with np.load(directory / ENV_RUNNER_FILE, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
        weights = {k.removeprefix("module."): v for k, v in arrays.items() if k.startswith("module.")}
        if weights:
            self._set_env_runner_weights(weights)
            runner = getattr(self.algo, "env_runner", None)
            if runner is not None and hasattr(runner, "_weights_seq_no"):
                # Which weights version it holds: it takes a broadcast only of a newer one.
                runner._weights_seq_no = int(state.get("env_runner", {}).get("weights_seq_no", 0))
        if state.get("env_runner", {}).get("episodes_done"):
            cached = {
                k.removeprefix("to_module."): torch.from_numpy(v.copy())
                for k, v in arrays.items()
                if k.startswith("to_module.")
            }
            with self._random.active():
                self._continue_after_finished_episodes(cached or None)

    def _local_env_runner_module(self) -> Any:
        """The policy module the local EnvRunner samples with (IMPALA/APPO: may lag the Learner's)."""
        runner = getattr(self.algo, "env_runner", None)
        module = getattr(runner, "module", None)
        if module is not None and hasattr(module, "keys"):  # a MultiRLModule
            return module.get(DEFAULT_MODULE_ID)
        return module

    def _env_runner_weights(self) -> dict[str, np.ndarray]:
        module = self._local_env_runner_module()
        if module is None:
            return {}
        return {name: t.detach().cpu().numpy().copy() for name, t in module.state_dict().items()}

    def _set_env_runner_weights(self, weights: dict[str, np.ndarray]) -> None:
        """The EnvRunner's weights as saved: RLlib's restore gives it the Learner's latest instead."""
        module = self._local_env_runner_module()
        if module is None:
            return
        current = module.state_dict()
        if sorted(current) != sorted(weights) or any(current[k].shape != weights[k].shape for k in current):
            raise CorruptCheckpointError(f"{ENV_RUNNER_FILE} does not fit this agent's env runner module")
        module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})

    # -- the local env runner at an episode boundary ------------------------------------------
    def _local_vector_env(self) -> tuple[Any, Any] | tuple[None, None]:
        """The local EnvRunner and its (sync) gymnasium vector env, when this process samples."""
        runner = getattr(self.algo, "env_runner", None)
        env = getattr(runner, "env", None)
        vector = getattr(env, "unwrapped", None)
        if not isinstance(getattr(vector, "_autoreset_envs", None), np.ndarray):
            return None, None
        return runner, vector

    def _finished_episodes(self) -> tuple[bool, dict[str, np.ndarray]]:
        """Whether every env of the local EnvRunner ended its episode at the last step sampled.

        Then RLlib's next sample() first runs one exploration pass whose actions the vector env
        ignores while it resets (gymnasium's next-step autoreset). A freshly built EnvRunner
        would not: `_continue_after_finished_episodes` puts a loaded one in the same state, so
        it draws the same random numbers. Also returns the observations batch of that pass.
        """
        runner, vector = self._local_vector_env()
        if runner is None or vector is None or getattr(runner, "_needs_initial_reset", True):
            return False, {}
        if not bool(np.all(vector._autoreset_envs)):
            return False, {}
        cached = getattr(runner, "_cached_to_module", None)
        arrays: dict[str, np.ndarray] = {}
        if isinstance(cached, dict) and all(isinstance(v, torch.Tensor) for v in cached.values()):
            arrays = {str(k): v.detach().cpu().numpy() for k, v in cached.items()}
        return True, arrays

    def _continue_after_finished_episodes(self, cached: dict[str, Any] | None) -> None:
        """Put the fresh local EnvRunner where the saver's was: every env awaiting its autoreset."""
        runner, vector = self._local_vector_env()
        if runner is None or vector is None or not all(
            hasattr(runner, name)
            for name in ("_reset_envs_and_episodes", "_new_episode", "_ongoing_episodes")
        ):
            return  # another RLlib version: the runner starts fresh, as RLlib's own restore does
        runner._reset_envs_and_episodes(explore=True)  # the seeded first reset a new runner does
        vector._autoreset_envs[:] = True  # the next step resets instead of stepping
        for index in range(runner.num_envs):
            runner._new_episode(index, runner._ongoing_episodes)  # empty: the reset starts it
        if cached:
            runner._cached_to_module = cached

    @staticmethod
    def _explain(exc: BaseException, doing: str, key: str, source: EnvSource) -> BaseException:
        """A polyrl error naming the env and the original exception, if the env caused `exc`."""
        failure = _find(exc, _EnvFailure) or _reported_failure(key)
        if isinstance(failure, _EnvFailure):
            if failure.where == "creation":
                return EnvironmentCreationError(
                    f"the environment {failure.env_name!r} failed to build in an RLlib env runner while "
                    f"{doing}: {failure.error_type}: {failure.error_text}"
                )
            return EnvRunnerError(
                f"the environment {failure.env_name!r} failed in an RLlib env runner while {doing}: "
                f"{failure.where} raised {failure.error_type}: {failure.error_text}"
            )
        if source.gym_id is None:
            package = source.name.partition(":")[0].split(".")[0]
            missing = f"No module named '{package}'"
            if any(missing in str(e) for e in _chain(exc)):
                return EnvironmentCreationError(
                    f"Ray's worker processes cannot import the env factory {source.name!r} ({missing}) "
                    f"while {doing}. Make its module importable on every node (install it, or put it on "
                    "PYTHONPATH before Ray starts), or ship it by value with "
                    f"ray.cloudpickle.register_pickle_by_value(<module {package}>) before creating the agent."
                )
        created = _find(exc, EnvironmentCreationError)
        return created if created is not None else exc

    # -- training ----------------------------------------------------------------------------
    def train_iteration(self) -> IterationReport:
        """One algo.train(): sample + update, reported in polyrl's vocabulary."""
        before = self.env_steps
        try:
            with self._random.active():
                result = self.algo.train()
        except Exception as exc:
            explained = self._explain(exc, "training", self.env_name, self.env_source)
            if explained is exc:
                raise
            raise explained from exc
        runners = result.get(ENV_RUNNER_RESULTS, {})
        episodes = _episodes(runners.get(EPISODES_KEY))
        learner = result.get("learners", {}).get(DEFAULT_MODULE_ID, {})
        losses = {common: float(learner[key]) for key, common in _LOSSES.items() if key in learner}
        if "entropy" in learner:
            losses["entropy_loss"] = -float(learner["entropy"])
        if self.spec.algorithm == "sac":
            losses.pop("policy_loss", None)
            if "policy_loss" in learner:
                losses["actor_loss"] = float(learner["policy_loss"])
            if "qf_loss" in learner:
                losses["critic_loss"] = float(learner["qf_loss"])
                losses.pop("q_loss", None)
            if {"actor_loss", "critic_loss"} <= losses.keys():
                losses["loss"] = losses["actor_loss"] + losses["critic_loss"]
        elif "q_loss" in losses:
            losses.setdefault("loss", losses["q_loss"])
        metrics = {
            common: float(learner[key])
            for key, common in _METRICS.items()
            if isinstance(learner.get(key), int | float)
        }
        return IterationReport(
            env_steps=self.env_steps - before, episodes=episodes, losses=losses, metrics=metrics
        )

    @property
    def env_steps(self) -> int:
        """RLlib's num_env_steps_sampled_lifetime (restored with the checkpoint)."""
        return int(self.algo.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0))

    # -- acting ------------------------------------------------------------------------------
    def _module(self) -> Any:
        group = self.algo.learner_group
        if group.is_local:
            return group._learner.module[DEFAULT_MODULE_ID]  # always the latest weights
        return self.algo.get_module(DEFAULT_MODULE_ID)  # synced after every train() and restore

    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        """Actions from the RLModule: inference pass (deterministic) or exploration pass."""
        if deterministic:  # draws no random numbers
            actions = self._act(observations, deterministic=True)
        else:
            with self._random.active():
                actions = self._act(observations, deterministic=False)
        space = self.env_source.action_space
        if isinstance(space, gym.spaces.Box):
            # What RLlib's NormalizeAndClipActions connector does before env.step.
            if self.algo.config.normalize_actions:
                actions = np.stack([unsquash_action(a, space) for a in actions])
            elif self.algo.config.clip_actions:
                actions = np.stack([clip_action(a, space) for a in actions])
        return actions

    def _act(self, observations: Any, deterministic: bool) -> np.ndarray:
        module = self._module()
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        with torch.no_grad():
            if deterministic:
                out = module.forward_inference({"obs": obs})
            else:
                out = module.forward_exploration({"obs": obs}, t=self.env_steps)
            if "actions" in out:  # DQN picks its actions itself (greedy / epsilon-greedy)
                actions = out["actions"]
            else:
                dist_cls = (
                    module.get_inference_action_dist_cls()
                    if deterministic
                    else module.get_exploration_action_dist_cls()
                )
                dist = dist_cls.from_logits(out["action_dist_inputs"])
                actions = (dist.to_deterministic() if deterministic else dist).sample()
        return actions.cpu().numpy()

    # -- learning rate -----------------------------------------------------------------------
    def _learning_rates(self) -> dict[str, float]:
        return self._on_learners(_learner_lrs)[0]

    def get_learning_rate(self) -> float:
        """The learning rate of the Learner's (policy) optimizer."""
        lrs = self._learning_rates()
        for name in ("policy", "default_optimizer"):
            if name in lrs:
                return lrs[name]
        return next(iter(lrs.values()))

    def set_learning_rate(self, value: float) -> None:
        """Set every Learner optimizer (SAC: all three unless alpha is fixed) and the config."""
        names = self._learning_rates()
        self._apply_learning_rates({name: float(value) for name in names if name not in self._skip_lr})

    def _apply_learning_rates(self, rates: dict[str, float]) -> None:
        """Set optimizers by name on every Learner, and the config's matching lr fields."""
        if not rates:
            return
        self.algo.learner_group.foreach_learner(functools.partial(_set_learner_lrs, rates=rates))
        config = self.algo.config
        config._is_frozen = False  # keep algo.config (saved in RLlib's checkpoint) truthful
        try:
            if self.spec.algorithm == "sac":
                for name, field in (("policy", "actor_lr"), ("qf", "critic_lr"), ("alpha", "alpha_lr")):
                    if name in rates:
                        setattr(config, field, rates[name])
            elif "default_optimizer" in rates:
                config.lr = rates["default_optimizer"]
        finally:
            config._is_frozen = True

    # -- parameters and replay ---------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """What the (first) Learner's optimizers update, by optimizer/group/position."""
        return self._on_learners(_learner_parameters)[0]

    def replay_size(self) -> int | None:
        """Env steps (transitions) in the DQN/SAC replay buffer; None for PPO/APPO/IMPALA."""
        buffer = self._replay_buffer()
        return None if buffer is None else int(buffer.get_num_timesteps())

    def _spaces(self) -> dict[str, Any]:
        """The env's spaces by the names the replay buffer file uses for them."""
        return {"observation": self.env_source.observation_space, "action": self.env_source.action_space}

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """RLlib's checkpoint (modules, optimizers, connectors, counters) plus polyrl's state.

        RLlib's new-stack checkpoints leave out the replay buffer, SAC's entropy temperature, the
        Learner's target-update and learner-thread counters and the env runner's (lagging) weights:
        polyrl writes them next to it as NumPy/JSON files (no pickle), with this agent's random
        states and whether every env had just finished its episode (see `_finished_episodes`).
        """
        self.algo.save_to_path((directory / CHECKPOINT_DIR).absolute())
        learners = self._on_learners(_learner_extras)
        finished, cached = self._finished_episodes()
        state = {
            "learning_rates": self._learning_rates(),
            "iteration_steps": self._iteration_steps(),
            "learner": learners[0],
            "env_runner": {
                "episodes_done": finished,
                "weights_seq_no": int(getattr(getattr(self.algo, "env_runner", None), "_weights_seq_no", 0)),
            },
            "counters": {
                str(k): int(v) for k, v in getattr(self.algo, "_counters", {}).items() if isinstance(v, int)
            },
        }
        group = self.algo.learner_group
        if group.is_local:
            state["learner_thread"] = _learner_thread_state(group._learner)
            pending = _pending_weights(group._learner)
            if pending is not None:
                replay.write_state(pending, directory, {}, {}, stem=PENDING_WEIGHTS)
        (directory / STATE_FILE).write_text(json.dumps(state))
        # Typed as plain mappings: mypy would otherwise match a key against savez's allow_pickle.
        arrays: dict[str, Any] = {f"to_module.{k}": v for k, v in cached.items()}
        arrays.update({f"module.{k}": v for k, v in self._env_runner_weights().items()})
        if arrays:
            np.savez(directory / ENV_RUNNER_FILE, **arrays)
        parameters: dict[str, Any] = self.parameters()
        np.savez(directory / PARAMETERS_FILE, **parameters)
        buffer = self._replay_buffer()
        if buffer is not None:
            from ray.rllib.utils.serialization import gym_space_to_dict

            spaces = {name: gym_space_to_dict(space) for name, space in self._spaces().items()}
            rng = getattr(buffer, "rng", None)
            extra = {"rng": rng.bit_generator.state} if isinstance(rng, np.random.Generator) else {}
            replay.write_state(buffer.get_state(), directory, spaces, extra)
        self._random.save(directory)

    # -- introspection -----------------------------------------------------------------------
    def _iteration_steps(self) -> int:
        return iteration_steps(self.algo.config, self.spec.algorithm)

    def _actor_layers(self) -> list[torch.nn.Module]:
        module = self._module()
        if self.spec.algorithm in ON_POLICY:
            encoder = getattr(module.encoder, "actor_encoder", module.encoder)
            head = module.pi
        elif self.spec.algorithm == "dqn":
            encoder, head = module.encoder, module.af
        else:
            encoder, head = module.pi_encoder, module.pi
        head_layers = list(head.modules())
        last_linear = max(i for i, m in enumerate(head_layers) if isinstance(m, torch.nn.Linear))
        return [*encoder.modules(), *head_layers[:last_linear]]

    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """Read back from the built Algorithm's config, its Learner optimizers and its RLModule."""
        layers = self._actor_layers()
        hidden, activation = describe_layers(layers)
        config = self.algo.config
        native: dict[str, Any] = {"class": type(self.algo).__name__, "module": type(self._module()).__name__}
        for name in (
            "lr",
            "actor_lr",
            "critic_lr",
            "alpha_lr",
            "gamma",
            "train_batch_size_per_learner",
            "minibatch_size",
            "num_epochs",
            "lambda_",
            "clip_param",
            "vf_clip_param",
            "vf_loss_coeff",
            "entropy_coeff",
            "use_kl_loss",
            "kl_coeff",
            "grad_clip",
            "num_env_runners",
            "num_envs_per_env_runner",
            "num_learners",
            "rollout_fragment_length",
            "min_sample_timesteps_per_iteration",
            "min_time_s_per_iteration",
            "training_intensity",
            "num_steps_sampled_before_learning_starts",
            "target_network_update_freq",
            "tau",
            "initial_alpha",
            "n_step",
            "double_q",
            "dueling",
            "seed",
            "normalize_actions",
            "clip_actions",
        ):
            value = getattr(config, name, None)
            if isinstance(value, float) and not math.isfinite(value):
                native[name] = str(value)  # e.g. vf_clip_param=inf: "inf" stays valid JSON
            elif isinstance(value, bool | int | float | str):
                native[name] = value
        buffer = getattr(config, "replay_buffer_config", None)
        if isinstance(buffer, dict):
            native["replay_buffer_type"] = str(buffer.get("type"))
            native["replay_buffer_capacity"] = int(buffer.get("capacity", 0))
        epsilon = getattr(config, "epsilon", None)
        if self.spec.algorithm == "dqn" and isinstance(epsilon, list | tuple):
            native["epsilon"] = json.dumps([list(point) for point in epsilon])
        native["fcnet_hiddens"] = json.dumps(list(config.model_config.get("fcnet_hiddens", [])))
        native["fcnet_activation"] = str(config.model_config.get("fcnet_activation"))
        batch = config.minibatch_size if self.spec.algorithm in ON_POLICY else config.total_train_batch_size
        return EffectiveHyperparameters(
            learning_rate=self.get_learning_rate(),
            gamma=float(config.gamma),
            hidden=hidden,
            activation=activation,
            n_envs=int(config.num_envs_per_env_runner) * max(int(config.num_env_runners), 1),
            batch_size=int(batch) if batch is not None else None,
            iteration_steps=self._iteration_steps(),
            native=native,
        )

    def native(self) -> Any:
        """The RLlib Algorithm."""
        return self.algo

    def close(self) -> None:
        """Stop the Algorithm's env runners and learners (Ray itself stays for other agents)."""
        algo, self.algo = self.algo, None
        if algo is not None:
            algo.stop()
            try:
                from ray.experimental.internal_kv import _internal_kv_del

                _internal_kv_del(_FAILURE_KEY + self.env_name)
            except Exception:  # nothing reported, or Ray already gone
                pass
