"""TianshouDriver: a polyrl BackendDriver over Tianshou 2.x's low-level API.

The driver owns one Tianshou Algorithm (which holds the Policy), one vectorised env, one
Collector with its buffer, and the Tianshou trainer parameters (OnPolicyTrainerParams or
OffPolicyTrainerParams) that name the schedule in Tianshou's words. It does what Tianshou's
trainer does for one epoch of `iteration_steps` env steps, but one epoch per call, so the
polyrl core owns the loop.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from polyrl import AgentSpec
from polyrl.backend import BackendDriver, DriverReport, EffectiveHyperparameters, EnvSource
from polyrl.driverkit import (
    GlobalRandomState,
    load_optimizer_parameters,
    optimizer_learning_rate,
    optimizer_parameters,
    set_optimizer_learning_rate,
)
from polyrl.experience.batch import TransitionBatch
from polyrl.torch_layers import describe_layers
from tianshou.algorithm.algorithm_base import Algorithm, OffPolicyAlgorithm, OnPolicyAlgorithm
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.data import Batch, Collector, CollectStats, VectorReplayBuffer, to_numpy
from tianshou.trainer import OffPolicyTrainerParams, OnPolicyTrainerParams
from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode

from polyrl_tianshou import checkpoint, encoders, networks
from polyrl_tianshou.checkpoint import ALGORITHM_FILE as ALGORITHM_FILE
from polyrl_tianshou.checkpoint import REPLAY_FILE as REPLAY_FILE
from polyrl_tianshou.checkpoint import STATE_FILE as STATE_FILE
from polyrl_tianshou.experience import SharedExperience
from polyrl_tianshou.exploration import noise_state_kept
from polyrl_tianshou.introspection import native_report
from polyrl_tianshou.params import FALLBACK_HORIZON, Settings, settings
from polyrl_tianshou.replay import samplers
from polyrl_tianshou.subproc import vector_env

# Tianshou TrainingStats field -> polyrl's common loss name
_LOSSES = {
    "loss": "loss",
    "actor_loss": "actor_loss",
    "critic_loss": "critic_loss",
    "vf_loss": "value_loss",
}


class TianshouDriver(BackendDriver):
    """Drives one Tianshou Algorithm: one polyrl iteration is one trainer epoch of `iteration_steps`."""

    def __init__(self, spec: AgentSpec, env: EnvSource, resolved: Settings) -> None:
        self.spec = spec
        self.env_source = env
        self.settings = resolved
        if resolved.torch_threads > 0:
            torch.set_num_threads(resolved.torch_threads)
        # Tianshou draws from the global generators: this agent keeps its own states (driverkit).
        self.random = GlobalRandomState(spec.seed)
        with self.random.active():
            self.algorithm: Algorithm = networks.build_algorithm(resolved, env)
        # Tianshou switches to train mode for its updates only; rest in eval mode so act() and
        # collection need not toggle the modules' mode at every call.
        self.algorithm.eval()
        self.policy = self.algorithm.policy
        self.venv = vector_env(resolved.vec_env, resolved.n_envs, env)
        size = resolved.iteration_steps if resolved.on_policy else resolved.buffer_size
        self.buffer = VectorReplayBuffer(max(size, resolved.n_envs), resolved.n_envs)
        if spec.seed is not None:
            # Tianshou seeds every buffer's sampler with 42; make the spec's seed count.
            for index, owner in enumerate(samplers(self.buffer)):
                owner._random_state = np.random.RandomState(spec.seed + index)
            self.venv.seed(spec.seed)
        self.collector: Collector[CollectStats] = Collector(
            self.algorithm, self.venv, self.buffer, exploration_noise=not resolved.on_policy
        )
        self.collector.reset()
        self.trainer_params = self._trainer_params()
        self._env_steps = 0
        self._gradient_steps = 0
        self._horizon: int | None = None
        self._epsilon: float | None = None  # the core sets it (a dqn.epsilon schedule): wins over exploration
        self.experience = SharedExperience(self.policy, self.buffer, env, resolved, spec.seed)

    def _trainer_params(self) -> OnPolicyTrainerParams | OffPolicyTrainerParams:
        s = self.settings
        common: dict[str, Any] = {
            "training_collector": self.collector,
            "epoch_num_steps": s.iteration_steps,
            "max_epochs": 1,
            "verbose": False,
            "show_progress": False,
        }
        if s.on_policy:
            return OnPolicyTrainerParams(
                **common,
                collection_step_num_env_steps=s.iteration_steps,
                batch_size=s.batch_size,
                update_step_num_repetitions=s.n_epochs,
            )
        return OffPolicyTrainerParams(
            **common,
            collection_step_num_env_steps=s.collect_steps,
            batch_size=int(s.batch_size or 1),
            update_step_num_gradient_steps_per_sample=s.gradient_steps / s.collect_steps,
        )

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> TianshouDriver:
        """Build a fresh Tianshou algorithm, envs and collector from the spec."""
        return cls(spec, env, settings(spec, env.action_space, env.observation_space))

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> TianshouDriver:
        """Rebuild from the spec, then restore weights, optimizers, counters and replay buffer."""
        checkpoint.check_files(directory)
        driver = cls.create(spec, env)
        checkpoint.restore(driver, directory)
        return driver

    # -- training ----------------------------------------------------------------------------
    def set_horizon(self, end_env_steps: int | None) -> None:
        """Remember the run's planned end so DQN's exploration schedule spans the run."""
        if end_env_steps is not None:
            self._horizon = end_env_steps

    def train_iteration(self) -> DriverReport:
        """One trainer epoch: a single collect + update (on-policy), or collection steps of
        `train_freq` env steps per env, each followed by `gradient_steps` updates (off-policy)."""
        with self.random.active():
            if self.settings.on_policy:
                return self._on_policy_iteration()
            return self._off_policy_iteration()

    def _on_policy_iteration(self) -> DriverReport:
        params = self.trainer_params
        assert isinstance(params, OnPolicyTrainerParams)
        algorithm = self.algorithm
        assert isinstance(algorithm, OnPolicyAlgorithm)
        with policy_within_training_step(self.policy):
            # no gradients are needed while acting; Tianshou's collector would record them
            with torch.no_grad():
                collected = self.collector.collect(n_step=params.collection_step_num_env_steps)
            # read before the update: the buffer is emptied after it
            self.experience.record(collected.n_collected_steps)
            stats = algorithm.update(
                buffer=self.buffer,
                batch_size=params.batch_size,
                repeat=params.update_step_num_repetitions,
            )
        self.collector.reset_buffer(keep_statistics=True)
        self._env_steps += collected.n_collected_steps
        updates = getattr(stats, "gradient_steps", 0)
        self._gradient_steps += updates
        values = stats.get_loss_stats_dict()
        return self._report(collected.n_collected_steps, self._episodes(collected), [values], updates)

    def _off_policy_iteration(self) -> DriverReport:
        params = self.trainer_params
        assert isinstance(params, OffPolicyTrainerParams)
        algorithm = self.algorithm
        assert isinstance(algorithm, OffPolicyAlgorithm)
        s = self.settings
        steps, episodes, values, updates = 0, [], [], 0
        while steps < params.epoch_num_steps:
            warming_up = self._env_steps < s.learning_starts
            with policy_within_training_step(self.policy):
                self._set_exploration()
                with torch.no_grad():
                    collected = self.collector.collect(
                        n_step=params.collection_step_num_env_steps, random=warming_up
                    )
                self.experience.record(collected.n_collected_steps)
                steps += collected.n_collected_steps
                self._env_steps += collected.n_collected_steps
                episodes.extend(self._episodes(collected))
                if warming_up:
                    continue
                count = round(params.update_step_num_gradient_steps_per_sample * collected.n_collected_steps)
                for _ in range(count):
                    stats = algorithm.update(sample_size=params.batch_size, buffer=self.buffer)
                    values.append(stats.get_loss_stats_dict())
                updates += count
        self._gradient_steps += updates
        return self._report(steps, episodes, values, updates)

    def _exploration_rate(self) -> float | None:
        if self.settings.exploration is None:
            return None
        if self._epsilon is not None:
            return self._epsilon
        fraction, initial, final = self.settings.exploration
        horizon = self._horizon or FALLBACK_HORIZON
        progress = self._env_steps / max(horizon * fraction, 1e-9)
        return initial + (final - initial) * min(1.0, progress)

    def _set_exploration(self) -> None:
        rate = self._exploration_rate()
        if rate is not None:
            policy = self.policy
            assert isinstance(policy, DiscreteQLearningPolicy)  # exploration settings are DQN's
            policy.set_eps_training(rate)

    # -- scheduled values --------------------------------------------------------------------
    def set_scheduled(self, name: str, value: float) -> None:
        """PPO's eps_clip and PPO/A2C's ent_coef are read by every update: set on the algorithm.
        DQN's epsilon replaces the exploration schedule, set at every collection step."""
        algorithm: Any = self.algorithm
        if name == "clip_range" and hasattr(algorithm, "eps_clip"):
            algorithm.eps_clip = float(value)
        elif name == "ent_coef" and self.settings.on_policy and hasattr(algorithm, "ent_coef"):
            algorithm.ent_coef = float(value)
        elif name == "epsilon" and self.settings.exploration is not None:
            self._epsilon = float(value)
            self._set_exploration()
        else:
            super().set_scheduled(name, value)

    def get_scheduled(self, name: str) -> float | None:
        """What the Tianshou objects hold: eps_clip, ent_coef, the DQN policy's eps_training."""
        algorithm: Any = self.algorithm
        if name == "clip_range" and hasattr(algorithm, "eps_clip"):
            return float(algorithm.eps_clip)
        if name == "ent_coef" and self.settings.on_policy and hasattr(algorithm, "ent_coef"):
            return float(algorithm.ent_coef)
        if name == "epsilon" and isinstance(self.policy, DiscreteQLearningPolicy):
            return float(self.policy.eps_training)
        return None

    @staticmethod
    def _episodes(collected: Any) -> list[tuple[float, int]]:
        return [(float(r), int(n)) for r, n in zip(collected.returns, collected.lens, strict=True)]

    def _report(
        self, steps: int, episodes: list[tuple[float, int]], values: list[dict[str, float]], updates: int
    ) -> DriverReport:
        mean: dict[str, float] = {}
        for key in {k for v in values for k in v}:
            numbers = [float(v[key]) for v in values if key in v and v[key] is not None]
            if numbers:
                mean[key] = sum(numbers) / len(numbers)
        losses = {common: mean[key] for key, common in _LOSSES.items() if key in mean}
        metrics: dict[str, float] = {
            "gradient_steps": float(updates),
            "n_updates": float(self._gradient_steps),
        }
        if "ent_loss" in mean:
            # Tianshou's ent_loss is the entropy bonus; polyrl's entropy_loss is its negative (sb3's)
            losses["entropy_loss"] = -mean["ent_loss"]
            metrics["entropy"] = mean["ent_loss"]
        if "actor_loss" in losses and self.settings.on_policy:
            losses["policy_loss"] = losses.pop("actor_loss")
        if "critic1_loss" in mean:
            losses["critic_loss"] = (
                mean["critic1_loss"] + mean.get("critic2_loss", mean["critic1_loss"])
            ) / 2
        if self.settings.algorithm == "dqn" and "loss" in losses:
            losses["q_loss"] = losses["loss"]
        if "loss" not in losses and {"actor_loss", "critic_loss"} <= losses.keys():
            losses["loss"] = losses["actor_loss"] + losses["critic_loss"]
        for key, name in (("alpha", "ent_coef"), ("alpha_loss", "ent_coef_loss")):
            if key in mean:
                metrics[name] = mean[key]
        rate = self._exploration_rate()
        if rate is not None:
            metrics["exploration_rate"] = rate
        return DriverReport(env_steps=steps, episodes=episodes, losses=losses, metrics=metrics)

    @property
    def env_steps(self) -> int:
        """Env steps collected over the agent's life (restored by load)."""
        return self._env_steps

    # -- acting ------------------------------------------------------------------------------
    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        """The policy's actions for a batch, mapped to the env's action range as the collector does.

        Deterministic: the distribution's mode (greedy for DQN, noise-free for TD3/DDPG).
        Stochastic: sampled as in training (epsilon-greedy with the current rate for DQN,
        the exploration noise for TD3/DDPG), from the process-global generators, so that
        stochastic play never shifts the agent's training streams.
        """
        policy = self.policy
        batch = Batch(obs=np.asarray(observations), info=Batch())
        with (
            torch.no_grad(),
            torch_train_mode(policy, enabled=False) if policy.training else nullcontext(),
            policy_within_training_step(policy, enabled=not deterministic),
            noise_state_kept(policy),
        ):
            actions = to_numpy(policy(batch).act)
            if not deterministic:
                actions = policy.add_exploration_noise(actions, batch)
        return np.asarray(policy.map_action(actions))

    # -- learning rate -----------------------------------------------------------------------
    def _alpha_optimizer(self) -> torch.optim.Optimizer | None:
        optimizer = getattr(getattr(self.algorithm, "alpha", None), "_optim", None)
        return optimizer if isinstance(optimizer, torch.optim.Optimizer) else None

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        found = [wrapper._optim for wrapper in self.algorithm._optimizers]
        alpha = self._alpha_optimizer()
        if alpha is not None:
            found.append(alpha)
        return found

    def get_learning_rate(self) -> float:
        """The learning rate in the first optimizer's parameter groups (all are kept equal)."""
        return optimizer_learning_rate(self._optimizers())

    def set_learning_rate(self, value: float) -> None:
        """Set the rate of every optimizer of the algorithm (actor, critics, entropy coefficient)."""
        set_optimizer_learning_rate(self._optimizers(), value)

    def parameters(self) -> dict[str, np.ndarray]:
        """What the algorithm's optimizers update (actor, critics, entropy coefficient)."""
        return optimizer_parameters(self._optimizers())

    def load_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Another agent's parameters into the tensors the algorithm's optimizers update."""
        load_optimizer_parameters(self._optimizers(), values)

    def replay_size(self) -> int | None:
        """Transitions in the replay buffer (off-policy), None for PPO/A2C."""
        return None if self.settings.on_policy else len(self.buffer)

    # -- shared experience (experience.py) ---------------------------------------------------
    def add_experience(self, batch: TransitionBatch) -> None:
        """Add the rows to the replay buffer through VectorReplayBuffer.add; no counter moves."""
        self.experience.add(batch)

    def sample_experience(self, n: int) -> TransitionBatch:
        """`n` rows from the buffer's own sampler (episode ids -1: the buffer does not know them)."""
        return self.experience.sample(n)

    def set_collecting(self, on: bool) -> None:
        """Start or stop reading back the rows every collect call adds to the buffer."""
        self.experience.set_collecting(on)

    def take_collected(self) -> TransitionBatch:
        """The rows collected since collecting started or the last call, env slot by env slot."""
        return self.experience.collected.take()

    # -- persistence (checkpoint.py) ---------------------------------------------------------
    def save(self, directory: Path) -> None:
        """The algorithm's state_dict (networks, target networks, optimizers), counters, buffer."""
        checkpoint.save(self, directory)

    # -- introspection -----------------------------------------------------------------------
    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """Read from the Tianshou algorithm, its policy's torch modules and its trainer parameters."""
        algorithm: Any = self.algorithm
        hidden, activation = describe_layers(networks.actor_hidden_layers(algorithm))
        params = self.trainer_params
        return EffectiveHyperparameters(
            learning_rate=self.get_learning_rate(),
            gamma=float(algorithm.gamma),
            hidden=hidden,
            activation=activation,
            n_envs=int(self.venv.env_num),
            batch_size=params.batch_size,
            iteration_steps=int(params.epoch_num_steps),
            device=encoders.module_device(algorithm),
            encoder=encoders.describe_encoder(algorithm, self.env_source.observation_space),
            native=native_report(algorithm, self.venv, self.buffer, params, self.settings),
        )

    def native(self) -> Algorithm:
        """The Tianshou Algorithm (its `.policy` acts; the driver's `collector` collects)."""
        return self.algorithm

    def close(self) -> None:
        """Close the vectorised envs."""
        if not getattr(self.venv, "is_closed", False):
            self.venv.close()
