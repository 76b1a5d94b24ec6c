"""RllibDriver: a polyrl BackendDriver over an RLlib Algorithm (new API stack).

One polyrl iteration is one `algo.train()`. Acting goes through the RLModule's inference
(deterministic) or exploration (stochastic) forward pass and its action distribution classes,
with continuous actions rescaled into the action space as RLlib's NormalizeAndClipActions
connector does. Checkpoints hold the Algorithm's state (`Algorithm.get_state()`) and what RLlib's
checkpoints leave out of it, all as NumPy arrays and JSON (`checkpoint.py`, `state.py`,
`replay.py`): the replay buffer, the trainable parameters RLlib keeps outside its modules (SAC's
entropy temperature), the Learner counters that drive target-network updates and the adaptive KL
coefficient, and the agent's random states. Loading unpickles nothing. RLlib's own checkpoint
(`Algorithm.save_to_path`, pickles) is exported beside them in `algorithm/` for
`Algorithm.from_checkpoint`; polyrl never reads it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from polyrl import AgentSpec
from polyrl.backend import BackendDriver, DriverReport, EffectiveHyperparameters, EnvSource
from polyrl.driverkit import GlobalRandomState
from polyrl.errors import EnvStepError, UnsupportedOptionError
from polyrl.experience.batch import TransitionBatch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

from polyrl_rllib import (
    building,
    checkpoint,
    describe,
    devices,
    encoders,
    env_errors,
    experience,
    learners,
    results,
)
from polyrl_rllib.checkpoint import CHECKPOINT_DIR as CHECKPOINT_DIR
from polyrl_rllib.checkpoint import ENV_RUNNER_FILE as ENV_RUNNER_FILE
from polyrl_rllib.checkpoint import PARAMETERS_FILE as PARAMETERS_FILE
from polyrl_rllib.checkpoint import PENDING_WEIGHTS as PENDING_WEIGHTS
from polyrl_rllib.checkpoint import STATE_FILE as STATE_FILE
from polyrl_rllib.env_errors import FAILURE_KEY as _FAILURE_KEY
from polyrl_rllib.params import ON_POLICY, Settings, exploration_schedule, iteration_steps
from polyrl_rllib.state import learner_parameters, set_learner_parameters

#: The environment raised inside an RLlib env runner: polyrl's EnvStepError, as on every backend
#: (NonFiniteDataError for NaN/infinite data); the name stays for code written against it.
EnvRunnerError = EnvStepError


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

    # -- building (building.py) --------------------------------------------------------------
    @classmethod
    def _build(cls, spec: AgentSpec, env: EnvSource) -> RllibDriver:
        algo, settings, env_name, random_state = building.build_algorithm(spec, env)
        driver = cls(spec, env, algo, settings, env_name, random_state)
        if spec.seed is not None:
            building.seed_library_generators(algo, driver._replay_buffer(), spec.seed)
        building.synchronize_learner_thread(algo)
        return driver

    def _replay_buffer(self) -> Any:
        """The Algorithm's local replay buffer (DQN/SAC), else None."""
        if self.spec.algorithm in ON_POLICY:
            return None
        return getattr(self.algo, "local_replay_buffer", None)

    def _on_learners(self, function: Any) -> list[Any]:
        """`function(learner)` on the local Learner, or on every remote one (their results)."""
        group = self.algo.learner_group
        if group.is_local:
            return [function(group._learner)]
        return [result.get() for result in group.foreach_learner(function)]

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
        state = checkpoint.read_state(directory)
        driver = cls._build(spec, env)
        checkpoint.restore(driver, directory, state)
        return driver

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
        return results.driver_report(result, self.spec.algorithm, self.env_steps - before)

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

    # -- persistence (checkpoint.py) ---------------------------------------------------------
    def save(self, directory: Path) -> None:
        """The Algorithm's state plus what RLlib's checkpoints leave out, as NumPy/JSON files.

        `polyrl_algorithm.npz`/`.json` hold `Algorithm.get_state()` (modules, optimizers,
        connectors, counters, metrics; see `state.py`). RLlib's state leaves out the replay
        buffer, SAC's entropy temperature, the Learner's target-update and learner-thread
        counters and the env runner's (lagging) weights: polyrl writes them next to it, with this
        agent's random states and whether every env had just finished its episode (see
        `checkpoint._finished_episodes`). None of these is pickled, and `load` reads only these.
        RLlib's own checkpoint (`Algorithm.save_to_path`, pickles) goes to `algorithm/`, an
        export for `Algorithm.from_checkpoint` that polyrl never reads.
        """
        checkpoint.save(self, directory)

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
