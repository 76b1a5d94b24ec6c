"""Sb3Driver: a polyrl BackendDriver over a Stable-Baselines3 model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import numpy as np
import torch
from polyrl import AgentSpec
from polyrl.backend import BackendDriver, DriverReport, EffectiveHyperparameters, EnvSource
from polyrl.driverkit import (
    RANDOM_STATE_FILE,
    GlobalRandomState,
    load_optimizer_parameters,
    native_settings,
    optimizer_learning_rate,
    optimizer_parameters,
    set_optimizer_learning_rate,
)
from polyrl.experience.batch import TransitionBatch
from polyrl.torch_layers import describe_layers
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import ConstantSchedule
from stable_baselines3.common.vec_env import DummyVecEnv

from polyrl_sb3 import legacy
from polyrl_sb3.archive import STATE_FILE, corrupt, read_state
from polyrl_sb3.experience import EpisodeCollector, ExperienceSupport
from polyrl_sb3.exploration import exploration_report
from polyrl_sb3.network import actor_extractor, describe_encoder
from polyrl_sb3.params import (
    ON_POLICY,
    algorithm_class,
    apply_torch_threads,
    iteration_steps,
    sb3_kwargs,
)
from polyrl_sb3.state import restore_model_state, write_model_state
from polyrl_sb3.subproc import GuardedSubprocVecEnv, delivering_factory

#: SB3's own zip, exported for users (`PPO.load`); polyrl never reads it: its data are pickles.
EXPORT_FILE = "sb3_model.zip"

# SB3 logger keys -> polyrl's common loss names
_LOSSES = {
    "train/loss": "loss",
    "train/policy_gradient_loss": "policy_loss",
    "train/policy_loss": "policy_loss",
    "train/value_loss": "value_loss",
    "train/entropy_loss": "entropy_loss",
    "train/actor_loss": "actor_loss",
    "train/critic_loss": "critic_loss",
}
_METRICS = {
    "train/approx_kl": "approx_kl",
    "train/clip_fraction": "clip_fraction",
    "train/explained_variance": "explained_variance",
    "train/ent_coef": "ent_coef",
    "train/ent_coef_loss": "ent_coef_loss",
    "train/n_updates": "n_updates",
    "rollout/exploration_rate": "exploration_rate",
}


def _silent_logger() -> Logger:
    # No output formats: SB3 still records values in name_to_value, which we read per iteration.
    return Logger(folder=None, output_formats=[])


#: The SB3 model attributes effective_hyperparameters reports in `native` (those the model has).
_NATIVE_SETTINGS = (
    "n_steps", "n_epochs", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm", "buffer_size",
    "learning_starts", "tau", "gradient_steps", "target_update_interval", "exploration_fraction",
    "exploration_initial_eps", "exploration_final_eps", "policy_delay", "target_policy_noise",
    "target_noise_clip",
)  # fmt: skip


class Sb3Driver(BackendDriver):
    """Drives one SB3 model: one polyrl iteration is one learn() chunk of one rollout+update."""

    def __init__(
        self, spec: AgentSpec, env: EnvSource, model: BaseAlgorithm, random_state: GlobalRandomState
    ) -> None:
        self.spec = spec
        self.env_source = env
        self.model = model
        self.model.set_logger(_silent_logger())
        self._collector = EpisodeCollector()
        self._chunk = iteration_steps(spec, model)
        # SB3 samples actions, minibatches and noise from the global generators: this agent keeps
        # its own states (those SB3 seeded while building it) and swaps them in per call.
        self._random = random_state
        self._experience = ExperienceSupport(model, spec.algorithm, env)

    # -- building ----------------------------------------------------------------------------
    @staticmethod
    def _vec_env(spec: AgentSpec, env: EnvSource) -> Any:
        factory: Callable[[], Any]
        vec_cls: type[DummyVecEnv | GuardedSubprocVecEnv]
        if spec.backend_options.get("vec_env") == "subproc":
            # SB3's workers die on an env exception: their guards hand polyrl's errors back instead.
            factory, vec_cls = delivering_factory(env), GuardedSubprocVecEnv
        else:
            factory, vec_cls = env.make, DummyVecEnv
        return make_vec_env(factory, n_envs=spec.n_envs, seed=spec.seed, vec_env_cls=vec_cls)

    @staticmethod
    def _policy_name(env: EnvSource) -> str:
        # polyrl hands every backend a Box (it encodes Discrete, Tuple, Dict...); an image's CNN
        # comes in as MlpPolicy's features extractor (see `network`), so one policy class fits all.
        return "MlpPolicy"

    @classmethod
    def _build(
        cls, spec: AgentSpec, env: EnvSource, restore: Callable[[BaseAlgorithm], None] | None = None
    ) -> Sb3Driver:
        """A model built from the spec, then (`restore`) given a checkpoint's training state."""
        kwargs = sb3_kwargs(spec, env.action_space, env.observation_space)
        apply_torch_threads(spec)
        # SB3 seeds the global generators while building; the caller's are given back after.
        with GlobalRandomState.preserved():
            model = algorithm_class(spec.algorithm)(cls._policy_name(env), cls._vec_env(spec, env), **kwargs)
            try:
                if restore is not None:
                    restore(model)
            except BaseException:
                vec_env = model.get_env()
                if vec_env is not None:
                    vec_env.close()  # subprocess envs would outlive the failed load
                raise
            random_state = GlobalRandomState()
        return cls(spec, env, model, random_state)

    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> Sb3Driver:
        """Build a fresh SB3 model from the spec."""
        return cls._build(spec, env)

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> Sb3Driver:
        """Rebuild the model from the spec, then restore its state from JSON and NumPy arrays.

        Nothing is unpickled: `sb3_model.zip` (SB3's export) is never read, and a checkpoint of
        the earlier pickle-based format is refused with how to convert it (see `legacy`).
        """
        state = read_state(directory, spec.algorithm)
        if state is None:
            if legacy.is_pickled_checkpoint(directory):
                return legacy.load_pickled(cls, directory, spec, env)  # refused unless converting
            raise corrupt(STATE_FILE, "missing: not an sb3 checkpoint")
        driver = cls._build(spec, env, lambda model: restore_model_state(model, directory, state))
        try:
            driver._chunk = state["iteration_steps"]
            driver._experience.restore(state)
            driver._restore_random(directory, state.get("action_space_rng"))
        except BaseException:
            driver.close()
            raise
        return driver

    def _restore_random(self, directory: Path, action_space_rng: Any) -> None:
        try:
            if not self._random.load(directory):
                raise corrupt(RANDOM_STATE_FILE, "missing")
            # Put the states in place once, so that a bad one fails here, not in train().
            with GlobalRandomState.preserved(), self._random.active():
                pass
        except (KeyError, ValueError, TypeError, OSError, EOFError, RuntimeError, BadZipFile) as exc:
            raise corrupt(RANDOM_STATE_FILE, f"not a random state polyrl wrote: {exc}") from exc
        try:
            self.model.action_space.np_random.bit_generator.state = action_space_rng
        except (KeyError, ValueError, TypeError) as exc:
            raise corrupt(STATE_FILE, f"action_space_rng is not a generator state: {exc}") from exc

    # -- training ----------------------------------------------------------------------------
    def set_horizon(self, end_env_steps: int | None) -> None:
        """Remember the run's planned end so SB3's schedules span the run, not one chunk."""
        self._collector.horizon = end_env_steps

    def train_iteration(self) -> DriverReport:
        """One learn() call of exactly one rollout+update (on-policy) or `iteration_steps` steps."""
        before = self.model.num_timesteps
        self._collector.episodes = []
        with self._random.active():
            self.model.learn(
                total_timesteps=self._chunk,
                callback=self._experience.callback(self._collector),
                reset_num_timesteps=False,
                log_interval=None,  # type: ignore[arg-type]  # SB3 annotates int, but skips dumping on None
                progress_bar=False,
            )
        values = dict(self.model.logger.name_to_value)
        self.model.logger.dump(self.model.num_timesteps)
        losses = {common: float(values[key]) for key, common in _LOSSES.items() if key in values}
        if self.spec.algorithm == "dqn" and "loss" in losses:
            losses["q_loss"] = losses["loss"]
        if "loss" not in losses and {"actor_loss", "critic_loss"} <= losses.keys():
            losses["loss"] = losses["actor_loss"] + losses["critic_loss"]
        model = self.model
        if (
            "loss" not in losses
            and {"policy_loss", "value_loss"} <= losses.keys()
            and isinstance(model, OnPolicyAlgorithm)  # PPO, A2C: the only ones reporting both
        ):
            losses["loss"] = (
                losses["policy_loss"]
                + model.vf_coef * losses["value_loss"]
                + model.ent_coef * losses.get("entropy_loss", 0.0)
            )
        metrics = {common: float(values[key]) for key, common in _METRICS.items() if key in values}
        return DriverReport(
            env_steps=self.model.num_timesteps - before,
            episodes=list(self._collector.episodes),
            losses=losses,
            metrics=metrics,
        )

    @property
    def env_steps(self) -> int:
        """SB3's num_timesteps, which its save/load keeps."""
        return int(self.model.num_timesteps)

    # -- acting ------------------------------------------------------------------------------
    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        """SB3's predict on a batch (epsilon-greedy for stochastic DQN, as SB3 does)."""
        if deterministic:  # draws no random numbers
            actions, _ = self.model.predict(observations, deterministic=True)
        else:
            with self._random.active():
                actions, _ = self.model.predict(observations, deterministic=False)
        return np.asarray(actions)

    # -- scheduled values --------------------------------------------------------------------
    def set_scheduled(self, name: str, value: float) -> None:
        """PPO's clip range and DQN's epsilon become constant SB3 schedules (SB3 evaluates them at
        every update / env step, so a plain number would be replaced back); ent_coef is a float."""
        model = self.model
        if name == "clip_range" and isinstance(model, PPO):
            model.clip_range = ConstantSchedule(float(value))
        elif name == "ent_coef" and isinstance(model, OnPolicyAlgorithm):
            model.ent_coef = float(value)
        elif name == "epsilon" and isinstance(model, DQN):
            model.exploration_schedule = ConstantSchedule(float(value))
            model.exploration_rate = float(value)  # what a stochastic predict() uses before learn()
        else:
            super().set_scheduled(name, value)

    def get_scheduled(self, name: str) -> float | None:
        """The value SB3 uses: its clip-range schedule now, ent_coef, DQN's exploration_rate."""
        model = self.model
        if name == "clip_range" and isinstance(model, PPO):
            clip: Any = model.clip_range
            return float(clip(model._current_progress_remaining)) if callable(clip) else float(clip)
        if name == "ent_coef" and isinstance(model, OnPolicyAlgorithm):
            return float(model.ent_coef)
        if name == "epsilon" and isinstance(model, DQN):
            return float(model.exploration_rate)
        return None

    # -- learning rate -----------------------------------------------------------------------
    def _optimizers(self) -> list[torch.optim.Optimizer]:
        policy = self.model.policy
        found = []
        for owner, name in (
            (policy, "optimizer"),
            (getattr(policy, "actor", None), "optimizer"),
            (getattr(policy, "critic", None), "optimizer"),
            (self.model, "ent_coef_optimizer"),
        ):
            optimizer = getattr(owner, name, None) if owner is not None else None
            if isinstance(optimizer, torch.optim.Optimizer) and optimizer not in found:
                found.append(optimizer)
        return found

    def get_learning_rate(self) -> float:
        """The learning rate in SB3's first optimizer's parameter groups."""
        return optimizer_learning_rate(self._optimizers())

    def set_learning_rate(self, value: float) -> None:
        """Set SB3's schedule to the constant `value` and apply it to every optimizer now.

        SB3 re-applies its schedule at every update, so changing only the optimizer would be
        undone; replacing the schedule makes the change stick.
        """
        self.model.learning_rate = value
        self.model._setup_lr_schedule()
        set_optimizer_learning_rate(self._optimizers(), value)

    def parameters(self) -> dict[str, np.ndarray]:
        """What SB3's optimizers update (policy, actor, critic, entropy coefficient)."""
        return optimizer_parameters(self._optimizers())

    def load_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Another agent's parameters into the tensors SB3's optimizers update."""
        load_optimizer_parameters(self._optimizers(), values)

    def replay_size(self) -> int | None:
        """Transitions in SB3's replay buffer (summed over envs), None for PPO/A2C."""
        buffer = getattr(self.model, "replay_buffer", None)
        if buffer is None:
            return None
        return int(buffer.size() * buffer.n_envs)

    # -- experience (see `experience`) --------------------------------------------------------
    def add_experience(self, batch: TransitionBatch) -> None:
        """Into SB3's replay buffer through its own `add`, as SB3 stores its own rows."""
        self._experience.add(batch)

    def sample_experience(self, n: int) -> TransitionBatch:
        """`n` rows from SB3's own replay sampler, actions in the env's space."""
        return self._experience.sample(n)

    def set_collecting(self, on: bool) -> None:
        """Pass learn() a callback keeping every env step's transitions (on), or no more."""
        self._experience.set_collecting(on)

    def take_collected(self) -> TransitionBatch:
        """The transitions collected since the last call, per env slot in step order."""
        return self._experience.take()

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """The training state as JSON and NumPy arrays (see `state`), plus SB3's zip as an export."""
        write_model_state(
            self.model,
            directory,
            {
                "algorithm": self.spec.algorithm,
                "iteration_steps": self._chunk,
                **self._experience.state(),  # the next id of collected episodes
                # DQN explores with action_space.sample(): its generator is part of the random state.
                "action_space_rng": self.model.action_space.np_random.bit_generator.state,
            },
        )
        self._random.save(directory)
        # For users of SB3 alone (PPO.load(...)); no replay-buffer pickle: the .npz holds it.
        self.model.save(directory / EXPORT_FILE)

    # -- introspection -----------------------------------------------------------------------
    def _actor_layers(self) -> list[torch.nn.Module]:
        policy: Any = self.model.policy  # the algorithm's own policy class, told apart by name below
        if self.spec.algorithm in ON_POLICY:
            return list(policy.mlp_extractor.policy_net)
        if self.spec.algorithm == "dqn":
            return list(policy.q_net.q_net)[:-1]
        if self.spec.algorithm == "sac":
            return list(policy.actor.latent_pi)
        return list(policy.actor.mu)[:-2]  # td3: drop the output Linear and its Tanh

    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """Read from the SB3 model and its torch modules, not from the spec."""
        layers = self._actor_layers()
        hidden, activation = describe_layers(layers)
        model: Any = self.model  # read by name: each algorithm class has its own attributes
        native: dict[str, Any] = {"class": type(model).__name__, "policy": type(model.policy).__name__}
        native.update(native_settings(model, _NATIVE_SETTINGS))
        clip = getattr(model, "clip_range", None)
        if clip is not None:
            native["clip_range"] = float(clip(1.0)) if callable(clip) else float(clip)
        native.update(exploration_report(model))
        return EffectiveHyperparameters(
            learning_rate=self.get_learning_rate(),
            gamma=float(model.gamma),
            hidden=hidden,
            activation=activation,
            n_envs=int(model.n_envs),
            batch_size=getattr(model, "batch_size", None),
            iteration_steps=self._chunk,
            device=str(model.device),
            encoder=describe_encoder(actor_extractor(self.spec.algorithm, model.policy)),
            native=native,
        )

    def native(self) -> BaseAlgorithm:
        """The SB3 model."""
        return self.model

    def close(self) -> None:
        """Close the vectorised envs."""
        env = self.model.get_env()
        if env is not None:
            env.close()
