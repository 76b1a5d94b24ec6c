"""An RL Zoo3 configuration trained through SB3 directly, measured by the bench's protocol.

What RL Zoo3's ExperimentManager builds for an entry (`polyrl_sb3.zoo.ZooSettings`): n_envs
Monitor-wrapped envs in a DummyVecEnv seeded with the seed (`make_vec_env`), VecNormalize when
`normalize` asks, Gaussian or Ornstein-Uhlenbeck action noise, then the algorithm with the
entry's arguments, `learn(n_timesteps)`. Not imported: RL Zoo3's gymnasium TimeLimit patch, which
changes only an info key SB3 reads from `truncated` anyway, and its own callbacks (evaluation,
checkpoints): the bench's protocol evaluates instead.

The protocol is the one polyrl's arm runs under: after every rollout and update (an SB3
"iteration", what polyrl's sb3 driver calls one), the iteration is reported with its wall and CPU
seconds; evaluations play deterministic episodes in a fresh env with polyrl's evaluation seeds
(observations normalised with the training statistics, as RL Zoo3's evaluation does), outside
the training clock. Device and torch threads are those polyrl would use for the cell's spec, so
both arms' seconds compare.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from polyrl.driverkit import resolve_device
from polyrl.exploration import GaussianNoiseSpec, OrnsteinUhlenbeckNoiseSpec
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from polyrl_sb3.exploration import noise_object
from polyrl_sb3.params import algorithm_class, apply_torch_threads
from polyrl_sb3.zoo import Named, ZooSettings

if TYPE_CHECKING:
    from polyrl_conformance.bench.cells import BenchCell
    from polyrl_conformance.bench.protocol import Play, SeedProtocol, Trained


def resolve(value: Any) -> Any:
    """A parsed snippet with its allowed names (nn.ReLU) replaced by the torch classes."""
    if isinstance(value, Named):
        return getattr(torch.nn, value.path.removeprefix("nn."))
    if isinstance(value, dict):
        return {key: resolve(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(resolve(item) for item in value)
    return value


def action_noise(settings: ZooSettings, env: VecEnv) -> ActionNoise | None:
    """RL Zoo3's noise_type/noise_std: zero-mean noise of that std in every action dimension.

    Built as polyrl's sb3 backend builds the spec's `action_noise` (SB3's own theta and dt for
    Ornstein-Uhlenbeck), so both arms of the comparison explore with the same object.
    """
    if settings.noise is None:
        return None
    kind, std = settings.noise
    noise = (
        GaussianNoiseSpec(sigma=std)
        if kind == "normal"
        else OrnsteinUhlenbeckNoiseSpec(kind="ornstein_uhlenbeck", sigma=std)
    )
    built: ActionNoise | None = noise_object(noise, env.action_space)
    return built


def build(settings: ZooSettings, seed: int, device: str) -> BaseAlgorithm:
    """The SB3 model RL Zoo3 builds for the entry and seed."""
    env: VecEnv = make_vec_env(settings.env, n_envs=settings.n_envs, seed=seed, vec_env_cls=DummyVecEnv)
    if settings.normalize is not None:
        env = VecNormalize(env, **settings.normalize)
    kwargs = dict(settings.kwargs)
    noise = action_noise(settings, env)
    if noise is not None:
        kwargs["action_noise"] = noise
    if settings.policy_kwargs:
        kwargs["policy_kwargs"] = resolve(settings.policy_kwargs)
    model_class = algorithm_class(settings.algorithm)
    return model_class(settings.policy, env, seed=seed, device=device, verbose=0, **kwargs)


def player(model: BaseAlgorithm, env_id: str, seed: int, episodes: int, offset: int) -> Play:
    """Plays `episodes` deterministic episodes in a fresh env, reset with seeds seed+offset+i."""

    def play() -> tuple[float | None, float | None]:
        normalizer = model.get_vec_normalize_env()
        env = gym.make(env_id)
        returns = []
        try:
            for index in range(episodes):
                observation, _ = env.reset(seed=seed + offset + index)
                total, done = 0.0, False
                while not done:
                    seen = observation if normalizer is None else normalizer.normalize_obs(observation)
                    action, _ = model.predict(seen, deterministic=True)
                    observation, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
        finally:
            env.close()
        return float(np.mean(returns)), float(np.std(returns))

    return play


class Measured(BaseCallback):
    """Reports each SB3 iteration (rollout, then update) to the bench's protocol; stops when told.

    An iteration ends when the next rollout starts (the update of the last one is done), or when
    training ends. Stopping takes effect at the next env step (SB3 stops on a False from on_step).
    """

    def __init__(self, protocol: SeedProtocol, play: Play, budget_steps: int) -> None:
        super().__init__()
        self.protocol = protocol
        self.play = play
        self.budget_steps = budget_steps
        self.returns: list[float] = []
        self.stop_reason: str | None = None
        self.stopped_at = 0
        self._wall = self._cpu = 0.0

    def _mark(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def _iteration(self) -> None:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        mean = float(np.mean(self.returns)) if self.returns else None
        self.returns = []
        self.protocol.iteration(self.num_timesteps, wall, cpu, mean, self.play)
        reason = self.protocol.stop_reason
        if reason is None and self.num_timesteps >= self.budget_steps:
            reason = f"the cell's budget of {self.budget_steps:,} env steps reached"
        if reason is not None:
            self.stop_reason, self.stopped_at = reason, self.num_timesteps
        self._mark()

    def _on_training_start(self) -> None:
        self._mark()

    def _on_rollout_start(self) -> None:
        if self.num_timesteps > 0 and self.stop_reason is None:
            self._iteration()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None:
                self.returns.append(float(episode["r"]))
        return self.stop_reason is None

    def _on_training_end(self) -> None:
        if self.stop_reason is None:
            self._iteration()


def train(settings: ZooSettings, cell: BenchCell, seed: int, protocol: SeedProtocol) -> Trained:
    """Build RL Zoo3's model for the seed and train it under `protocol`, at most the cell's budget.

    `learn` gets the entry's n_timesteps, so its schedules run over the Zoo's horizon; training
    stops at the cell's budget if that comes first (the two are equal in the default slice).
    """
    from polyrl_conformance.bench.protocol import EVAL_SEED_OFFSET, Trained

    began = time.perf_counter()
    spec = cell.agent_spec(seed)
    apply_torch_threads(spec)  # the threads polyrl's driver uses: the seconds compare
    model = build(settings, seed, resolve_device(spec.device))
    play = player(model, settings.env, seed, cell.eval_episodes, EVAL_SEED_OFFSET)
    measured = Measured(protocol, play, cell.budget_steps)
    setup = time.perf_counter() - began
    try:
        model.learn(total_timesteps=settings.n_timesteps, callback=measured, progress_bar=False)
        protocol.finish(play)
    finally:
        vec_env = model.get_env()
        if vec_env is not None:
            vec_env.close()
    if measured.stop_reason is not None:
        return Trained(measured.stopped_at, setup, measured.stop_reason)
    return Trained(
        int(model.num_timesteps), setup, f"RL Zoo3's n_timesteps of {settings.n_timesteps:,} reached"
    )
