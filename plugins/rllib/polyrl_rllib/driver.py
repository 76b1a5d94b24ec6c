"""RllibDriver: a polyrl BackendDriver over an RLlib Algorithm (new API stack).

One polyrl iteration is one `algo.train()`. Acting goes through the RLModule's inference
(deterministic) or exploration (stochastic) forward pass and its action distribution classes,
with continuous actions rescaled into the action space as RLlib's NormalizeAndClipActions
connector does. Checkpoints hold the Algorithm's state (`Algorithm.get_state()`) and what RLlib's
checkpoints leave out of it, all as NumPy arrays and JSON (`state.py`, `replay.py`): the replay
buffer, the trainable parameters RLlib keeps outside its modules (SAC's entropy temperature), the
Learner counters that drive target-network updates and the adaptive KL coefficient, and the
agent's random states. Loading unpickles nothing. RLlib's own checkpoint (`Algorithm.save_to_path`,
pickles) is exported beside them in `algorithm/` for `Algorithm.from_checkpoint`; polyrl never
reads it.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import uuid
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from polyrl import AgentSpec
from polyrl.backend import BackendDriver, DriverReport, EffectiveHyperparameters, EnvSource
from polyrl.driverkit import GlobalRandomState, apply_torch_threads, resolve_device
from polyrl.errors import (
    ConfigurationError,
    CorruptCheckpointError,
    EnvStepError,
    UnsupportedOptionError,
)
from polyrl.experience.batch import TransitionBatch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action
from ray.tune.registry import register_env

from polyrl_rllib import (
    collect,
    describe,
    devices,
    encoders,
    env_errors,
    experience,
    learners,
    replay,
    runtime,
)
from polyrl_rllib.env_errors import FAILURE_KEY as _FAILURE_KEY
from polyrl_rllib.params import (
    ON_POLICY,
    Settings,
    build_config,
    exploration_schedule,
    iteration_steps,
    read_settings,
)
from polyrl_rllib.state import (
    ALGORITHM_STATE,
    has_algorithm,
    learner_extras,
    learner_parameters,
    learner_thread_state,
    pending_weights,
    restore_algorithm,
    save_algorithm,
    set_learner_extras,
    set_learner_parameters,
    set_learner_thread_state,
    set_pending_weights,
)

CHECKPOINT_DIR = "algorithm"
STATE_FILE = "polyrl_rllib.json"
PARAMETERS_FILE = "polyrl_parameters.npz"
ENV_RUNNER_FILE = "polyrl_env_runner.npz"
PENDING_WEIGHTS = "polyrl_pending_weights"
_PENDING = "IMPALA/APPO's pending weights snapshot"

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


#: The environment raised inside an RLlib env runner: polyrl's EnvStepError, as on every backend
#: (NonFiniteDataError for NaN/infinite data); the name stays for code written against it.
EnvRunnerError = EnvStepError


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
        # act() gets the env's observations; RLlib's envs give the module converted images.
        self._to_module = encoders.ObservationAdapter(env.observation_space)
        config = algo.config
        spaces = experience.Spaces(
            env.observation_space, env.action_space, bool(config.normalize_actions), bool(config.clip_actions)
        )
        infos = {"backend": "rllib", "algorithm": spec.algorithm, "env": env.name}
        self._experience = experience.Experience(spaces, spec.seed, infos)
        self._exploration: list[list[float]] | None = None  # DQN's epsilon schedule for the planned run

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def _build(cls, spec: AgentSpec, env: EnvSource) -> RllibDriver:
        settings = read_settings(spec)
        env_name = _env_name(env)
        device = resolve_device(spec.device)  # DeviceUnavailableError before Ray starts
        config = build_config(spec, env_name, settings, env.observation_space, device)  # validates too
        apply_torch_threads(settings.torch_threads)
        instance = runtime.ensure_ray(settings.address, settings.num_cpus, settings.ray_connect_timeout)
        cls._check_resources(config, instance, settings)
        devices.check_learner_gpus(config)
        register_env(env_name, env_errors.EnvCreator(env, env_name))
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
            explained = cls._explain(exc, "building the RLlib algorithm", env_name, env)
            if explained is exc:
                raise
            raise explained from env_errors.cause(explained, exc)
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
        learners.wait_for_learner_thread(learner)
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
        """Rebuild the Algorithm from the spec and set the state polyrl saved into it.

        Reads NumPy arrays (allow_pickle=False) and JSON only, so loading runs no code from the
        checkpoint. RLlib's own checkpoint in `algorithm/` (pickles) is never read here.
        """
        state_file = directory / STATE_FILE
        if not state_file.is_file() or not has_algorithm(directory):
            if state_file.is_file() and (directory / CHECKPOINT_DIR).is_dir():
                raise CorruptCheckpointError(
                    f"{directory} was written by an older polyrl: its RLlib state is only in RLlib's own "
                    f"checkpoint ({CHECKPOINT_DIR}/), which is pickled, and polyrl does not unpickle "
                    "(it would run code from the checkpoint). Load and re-save it with the polyrl that "
                    "wrote it, or, if you trust its author, restore it with RLlib's "
                    "Algorithm.from_checkpoint"
                )
            raise CorruptCheckpointError(
                f"{directory} has no {STATE_FILE} and {ALGORITHM_STATE}.json/.npz: not an rllib checkpoint"
            )
        state = replay.read_json(state_file)
        driver = cls._build(spec, env)
        try:
            restore_algorithm(driver.algo, directory)
            # The optimizers' state came back with the algorithm state; RLlib's lr schedulers (built
            # from the spec's rate) would overwrite it at the next update, so re-apply the saved rates.
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
        """What RLlib's checkpoints leave out: parameters, Learner counters, buffer, RNGs, env runner."""
        parameters = directory / PARAMETERS_FILE
        if parameters.is_file():
            values = replay.read_arrays(parameters)
            for wrong in self._on_learners(functools.partial(set_learner_parameters, values=values)):
                if wrong:
                    raise CorruptCheckpointError(
                        f"{parameters} does not fit this agent's optimizers (spec changed?): {wrong[:5]}"
                    )
        extras = state.get("learner", {})
        if extras:
            self._on_learners(functools.partial(set_learner_extras, extras=extras))
        buffer = self._replay_buffer()
        if buffer is not None and replay.has_state(directory):
            tree, extra, places = replay.read_state(directory)
            buffer.set_state(tree)
            replay.restore_spaces(buffer, places, self._spaces())
            if "rng" in extra and isinstance(getattr(buffer, "rng", None), np.random.Generator):
                buffer.rng.bit_generator.state = extra["rng"]
        self._random.load(directory)
        self._experience.load_state(state.get("experience", {}))
        counters = getattr(self.algo, "_counters", None)
        if isinstance(counters, dict):
            counters.update({k: int(v) for k, v in state.get("counters", {}).items()})
        group = self.algo.learner_group
        if group.is_local:
            set_learner_thread_state(group._learner, state.get("learner_thread", {}))
            if replay.has_state(directory, PENDING_WEIGHTS):
                snapshot, _ = replay.read_tree(directory, PENDING_WEIGHTS, _PENDING)
                set_pending_weights(group._learner, snapshot)
        arrays: dict[str, np.ndarray] = {}
        if (directory / ENV_RUNNER_FILE).is_file():
            arrays = replay.read_arrays(directory / ENV_RUNNER_FILE)
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
        if (
            runner is None
            or vector is None
            or not all(
                hasattr(runner, name)
                for name in ("_reset_envs_and_episodes", "_new_episode", "_ongoing_episodes")
            )
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
        return env_errors.explain(exc, doing, key, source)

    # -- training ----------------------------------------------------------------------------
    def train_iteration(self) -> DriverReport:
        """One algo.train(): sample + update, reported in polyrl's vocabulary."""
        before = self.env_steps
        try:
            with self._random.active():
                result = self.algo.train()
        except Exception as exc:
            explained = self._explain(exc, "training", self.env_name, self.env_source)
            if explained is exc:
                raise
            raise explained from env_errors.cause(explained, exc)
        runners = result.get(ENV_RUNNER_RESULTS, {})
        episodes = learners.logged_episodes(runners.get(learners.EPISODES_KEY))
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
        return DriverReport(
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
        device = next(iter(module.parameters())).device
        obs = torch.as_tensor(self._to_module(observations), device=device)
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
        return self._on_learners(learners.learner_lrs)[0]

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
        self.algo.learner_group.foreach_learner(functools.partial(learners.set_learner_lrs, rates=rates))
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

    def set_horizon(self, end_env_steps: int | None) -> None:
        """DQN: decay epsilon over exploration_fraction of the planned run, as SB3 and Tianshou do."""
        schedule = None if end_env_steps is None else exploration_schedule(self.spec, end_env_steps)
        if schedule is None or schedule == self._exploration:
            return
        self._exploration = schedule
        setter = functools.partial(learners.set_module_epsilon_schedule, schedule=schedule)
        self.algo.env_runner_group.foreach_env_runner(setter, local_env_runner=True)
        self._on_learners(setter)
        self._set_config("epsilon", schedule)

    # -- scheduled values --------------------------------------------------------------------
    def set_scheduled(self, name: str, value: float) -> None:
        """PPO's clip_param and entropy coefficient on every Learner, DQN's epsilon on every
        EnvRunner's RLModule (and the Learner's, which stochastic act() uses); the algorithm's
        config follows, so effective_hyperparameters() and RLlib's checkpoint stay truthful."""
        if name in ("clip_range", "ent_coef") and self.spec.algorithm == "ppo":
            self.algo.learner_group.foreach_learner(
                functools.partial(learners.set_learner_scheduled, name=name, value=float(value))
            )
            self._set_config("clip_param" if name == "clip_range" else "entropy_coeff", float(value))
        elif name == "epsilon" and self.spec.algorithm == "dqn":
            setter = functools.partial(learners.set_module_epsilon, value=float(value))
            self.algo.env_runner_group.foreach_env_runner(setter, local_env_runner=True)
            self._on_learners(setter)
            self._set_config("epsilon", float(value))
        else:
            super().set_scheduled(name, value)

    def get_scheduled(self, name: str) -> float | None:
        """Read back from the first Learner (clip_param, entropy coefficient) or the sampling
        EnvRunner (epsilon)."""
        if name in ("clip_range", "ent_coef") and self.spec.algorithm == "ppo":
            return self._on_learners(functools.partial(learners.learner_scheduled, name=name))[0]
        if name == "epsilon" and self.spec.algorithm == "dqn":
            found = self.algo.env_runner_group.foreach_env_runner(
                learners.module_epsilon, local_env_runner=True
            )
            # The local EnvRunner comes first; with remote ones, they are the ones sampling.
            return next((value for value in reversed(found) if value is not None), None)
        return None

    def _set_config(self, field: str, value: Any) -> None:
        config = self.algo.config
        config._is_frozen = False
        try:
            setattr(config, field, value)
        finally:
            config._is_frozen = True

    # -- parameters and replay ---------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """What the (first) Learner's optimizers update, by optimizer/group/position."""
        return self._on_learners(learner_parameters)[0]

    def load_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Another agent's parameters into the Learner(s), then into the env runners that act."""
        for wrong in self._on_learners(functools.partial(set_learner_parameters, values=values)):
            if wrong:
                raise UnsupportedOptionError(
                    f"these parameters do not fit this agent's optimizers: {wrong[:5]}"
                )
        self.algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.algo.learner_group, inference_only=True
        )

    def replay_size(self) -> int | None:
        """Env steps (transitions) in the DQN/SAC replay buffer; None for PPO/APPO/IMPALA."""
        buffer = self._replay_buffer()
        return None if buffer is None else int(buffer.get_num_timesteps())

    def _spaces(self) -> dict[str, Any]:
        """The env's spaces by the names the replay buffer file uses for them."""
        return {
            "observation": encoders.module_space(self.env_source.observation_space),
            "action": self.env_source.action_space,
        }

    # -- experience (polyrl_rllib.experience) ------------------------------------------------
    def add_experience(self, batch: TransitionBatch) -> None:
        """The rows as episode chunks through the replay buffer's own add(); no counter moves."""
        self._experience.add(self._replay_buffer(), batch)

    def sample_experience(self, n: int) -> TransitionBatch:
        """`n` one-step transitions from the replay buffer's own sampler (training's draws unchanged)."""
        return self._experience.sample(self._replay_buffer(), n, float(self.algo.config.gamma))

    def set_collecting(self, on: bool) -> None:
        """Keep (or stop keeping) the chunks the local env runner samples (polyrl_rllib.collect)."""
        collector = self._experience.collector
        if not on:
            collector.stop()
            return
        runner = getattr(self.algo, "env_runner", None)
        if self.settings.num_env_runners > 0 or runner is None:
            raise UnsupportedOptionError(
                f"rllib collects transitions only when this process samples; with backend_options "
                f"num_env_runners={self.settings.num_env_runners} the episodes are sampled in other "
                "processes. Drop num_env_runners (sampling then runs in this process) to record or share "
                "experience"
            )
        collector.start(runner)

    def take_collected(self) -> TransitionBatch:
        """The rows collected since the last call (actions as sent to the env), then forgotten."""
        return self._experience.collector.take()

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """The Algorithm's state plus what RLlib's checkpoints leave out, as NumPy/JSON files.

        `polyrl_algorithm.npz`/`.json` hold `Algorithm.get_state()` (modules, optimizers,
        connectors, counters, metrics; see `state.py`). RLlib's state leaves out the replay
        buffer, SAC's entropy temperature, the Learner's target-update and learner-thread
        counters and the env runner's (lagging) weights: polyrl writes them next to it, with this
        agent's random states and whether every env had just finished its episode (see
        `_finished_episodes`). None of these is pickled, and `load` reads only these. RLlib's
        own checkpoint (`Algorithm.save_to_path`, pickles) goes to `algorithm/`, an export for
        `Algorithm.from_checkpoint` that polyrl never reads.
        """
        save_algorithm(self.algo, directory)
        self.algo.save_to_path((directory / CHECKPOINT_DIR).absolute())
        learners = self._on_learners(learner_extras)
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
            "experience": self._experience.state(),
        }
        group = self.algo.learner_group
        if group.is_local:
            state["learner_thread"] = learner_thread_state(group._learner)
            pending = pending_weights(group._learner)
            if pending is not None:
                replay.write_tree(pending, directory, PENDING_WEIGHTS, _PENDING)
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

    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """Read back from the built Algorithm's config, its Learner optimizers and its RLModule."""
        module, space = self._module(), self.env_source.observation_space
        return describe.effective_hyperparameters(
            self.algo,
            module,
            self.spec.algorithm,
            self.get_learning_rate(),
            self._iteration_steps(),
            encoder=describe.encoder_description(module, self.spec.algorithm, space),
            device=self._on_learners(devices.learner_device)[0],
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
