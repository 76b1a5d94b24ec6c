"""RllibDriver: a polyrl BackendDriver over an RLlib Algorithm (new API stack).

One polyrl iteration is one `algo.train()`. Acting goes through the RLModule's inference
(deterministic) or exploration (stochastic) forward pass and its action distribution classes,
with continuous actions rescaled into the action space as RLlib's NormalizeAndClipActions
connector does. Checkpoints are RLlib's own format (`Algorithm.save_to_path`) in `algorithm/`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from polyrl import (
    AgentSpec,
    BackendDriver,
    ConfigurationError,
    CorruptCheckpointError,
    EffectiveHyperparameters,
    EnvironmentCreationError,
    EnvSource,
    IterationReport,
    PolyrlError,
)
from polyrl.torch_layers import describe_layers
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.schedules.scheduler import Scheduler
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action
from ray.tune.registry import register_env

from polyrl_rllib import runtime
from polyrl_rllib.params import (
    ON_POLICY,
    Settings,
    build_config,
    iteration_steps,
    read_settings,
)

CHECKPOINT_DIR = "algorithm"
STATE_FILE = "polyrl_rllib.json"
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
        for group in optimizer.param_groups:
            group["lr"] = rates[name]
        # The Learner re-applies its scheduler after every update; replace it or the change is undone.
        learner._optimizer_lr_schedules[optimizer] = Scheduler(
            fixed_value_or_schedule=rates[name], framework="torch", device=learner._device
        )


def _learner_lrs(learner: Any) -> dict[str, float]:
    return {
        name: float(optimizer.param_groups[0]["lr"])
        for name, optimizer in learner.get_optimizers_for_module(DEFAULT_MODULE_ID)
    }


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

    def __init__(self, spec: AgentSpec, env: EnvSource, algo: Any, settings: Settings, env_name: str) -> None:
        self.spec = spec
        self.env_name = env_name  # the name registered with Ray's env registry
        self.env_source = env
        self.algo = algo
        self.settings = settings
        ent_coef = spec.sac.ent_coef if spec.algorithm == "sac" and spec.sac is not None else None
        self._frozen_alpha = ent_coef not in (None, "auto")
        self._skip_lr = ("alpha",) if self._frozen_alpha else ()

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def _build(cls, spec: AgentSpec, env: EnvSource) -> RllibDriver:
        settings = read_settings(spec)
        env_name = _env_name(env)
        config = build_config(spec, env_name, settings)  # validates before Ray starts
        torch.set_num_threads(settings.torch_threads)
        instance = runtime.ensure_ray(settings.address, settings.num_cpus)
        cls._check_resources(config, instance, settings)
        register_env(env_name, _EnvCreator(env, env_name))
        config.callbacks(on_episode_end=_record_episode)
        try:
            with warnings.catch_warnings():
                # RLlib re-registers its gym wrapper id in every env runner; gymnasium warns each time.
                warnings.filterwarnings("ignore", message=".*Overriding environment rllib-")
                algo = config.build_algo()
        except Exception as exc:
            explained = cls._explain(exc, "building the RLlib algorithm", env_name, env)
            if explained is exc:
                raise
            raise explained from exc
        buffer = getattr(algo, "local_replay_buffer", None)
        if spec.seed is not None and isinstance(getattr(buffer, "rng", None), np.random.Generator):
            # RLlib seeds envs and torch but leaves the replay buffer's sampling RNG unseeded.
            buffer.rng = np.random.default_rng(spec.seed)
        return cls(spec, env, algo, settings, env_name)

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
        except Exception as exc:
            driver.close()
            raise CorruptCheckpointError(
                f"RLlib cannot restore {checkpoint}: {type(exc).__name__}: {exc}"
            ) from exc
        state = json.loads(state_file.read_text())
        # The optimizers' state came back with the checkpoint; RLlib's lr schedulers (built from
        # the spec's rate) would overwrite it at the next update, so re-apply the saved rates.
        driver._apply_learning_rates({k: float(v) for k, v in state.get("learning_rates", {}).items()})
        return driver

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
        actions = actions.cpu().numpy()
        space = self.env_source.action_space
        if isinstance(space, gym.spaces.Box):
            # What RLlib's NormalizeAndClipActions connector does before env.step.
            if self.algo.config.normalize_actions:
                actions = np.stack([unsquash_action(a, space) for a in actions])
            elif self.algo.config.clip_actions:
                actions = np.stack([clip_action(a, space) for a in actions])
        return actions

    # -- learning rate -----------------------------------------------------------------------
    def _learning_rates(self) -> dict[str, float]:
        group = self.algo.learner_group
        if group.is_local:
            return _learner_lrs(group._learner)
        results = group.foreach_learner(_learner_lrs)
        return next(iter(results)).get()

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

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """RLlib's checkpoint (modules, optimizers, connectors, counters) plus polyrl's state.

        The replay buffer of DQN/SAC is not part of RLlib's new-stack checkpoints.
        """
        self.algo.save_to_path((directory / CHECKPOINT_DIR).absolute())
        state = {"learning_rates": self._learning_rates(), "iteration_steps": self._iteration_steps()}
        (directory / STATE_FILE).write_text(json.dumps(state))

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
