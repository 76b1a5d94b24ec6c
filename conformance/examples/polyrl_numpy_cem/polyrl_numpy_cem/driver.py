"""CemDriver: the cross-entropy method over the weights of a NumPy policy network.

One polyrl iteration: sample `population` weight vectors from N(mean, std), give each exactly
`iteration_steps // population` env steps starting from a reset (resetting again whenever an
episode ends), score it by the mean discounted return of the episodes it finished (of its
unfinished one if it finished none), and move mean and std towards those of the elite candidates by
`learning_rate` (0 freezes them). Deterministic actions use the mean weights.

The rules the conformance suite checks, and how this driver keeps them:
- the search distribution (mean, std) is what an iteration updates: `parameters()` returns it;
- every iteration collects exactly the declared `iteration_steps` (population x steps each);
- every random draw (initial mean, candidates, stochastic actions, the seed of every env reset)
  comes from the agent's own `np.random.Generator`, never the process-global one, so agents in
  one process do not disturb each other, and the env carries no state from one candidate to the
  next;
- a checkpoint holds the distribution, the env-step counter, the learning rate and the
  generator's state (`bit_generator.state` as JSON): a loaded agent continues exactly.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
from polyrl import AgentSpec
from polyrl.backend import BackendDriver, DriverReport, EffectiveHyperparameters, EnvSource
from polyrl.envs import space_kind
from polyrl.errors import (
    ConfigurationError,
    CorruptCheckpointError,
    DeviceUnavailableError,
    UnsupportedOptionError,
)
from polyrl.schedules import initial_value

DEFAULT_ITERATION_STEPS = 1000
DEFAULT_GAMMA = 0.99
DEFAULT_LEARNING_RATE = 1.0
OPTIONS: dict[str, float] = {
    "population": 16,
    "elite_fraction": 0.25,
    "init_std": 0.5,
    "noise_floor": 0.01,
    "action_noise": 0.1,
}
PARAMS_FILE = "cem_params.npz"
STATE_FILE = "cem_state.json"


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "gelu": _gelu,
    "silu": lambda x: x / (1.0 + np.exp(-x)),
}


class PolicyNetwork:
    """A fully connected network whose weights live in one flat vector (what CEM searches)."""

    def __init__(self, inputs: int, outputs: int, hidden: list[int], activation: str) -> None:
        self.hidden = list(hidden)
        self.activation = activation
        sizes = [inputs, *hidden, outputs]
        self.shapes = list(itertools.pairwise(sizes))
        self.size = sum(a * b + b for a, b in self.shapes)

    def forward(self, weights: np.ndarray, observations: np.ndarray) -> np.ndarray:
        """Outputs (N, outputs) for observations (N, inputs)."""
        x = observations
        offset = 0
        for index, (a, b) in enumerate(self.shapes):
            w = weights[offset : offset + a * b].reshape(a, b)
            offset += a * b
            x = x @ w + weights[offset : offset + b]
            offset += b
            if index < len(self.shapes) - 1:
                x = ACTIVATIONS[self.activation](x)
        return x


class CemDriver(BackendDriver):
    """A polyrl backend driver implementing CEM in NumPy (Box observations; Discrete/Box actions)."""

    def __init__(self, spec: AgentSpec, env: EnvSource) -> None:
        if spec.device.startswith("cuda"):  # "auto" and "cpu" are the CPU; a GPU is never used
            raise DeviceUnavailableError(
                f"cem computes with NumPy on the CPU: device {spec.device!r} is not available to it; "
                "use device='cpu' or 'auto'"
            )
        unknown = sorted(set(spec.backend_options) - set(OPTIONS))
        if unknown:
            raise UnsupportedOptionError(
                f"cem has no backend option(s) {unknown}; it accepts {sorted(OPTIONS)}"
            )
        if spec.batch_size is not None:
            raise UnsupportedOptionError("cem has no batch size: remove batch_size (set iteration_steps)")
        options: dict[str, Any] = {**OPTIONS, **spec.backend_options}  # JSON values: converted below
        self.population = int(options["population"])
        self.elite_fraction = float(options["elite_fraction"])
        self.noise_floor = float(options["noise_floor"])
        self.action_noise = float(options["action_noise"])
        if self.population < 2 or not 0 < self.elite_fraction <= 1:
            raise ConfigurationError("cem needs population >= 2 and 0 < elite_fraction <= 1")
        # A learning-rate schedule builds with its start value; the core sets the rest per iteration.
        rate = initial_value(spec.learning_rate)
        self.learning_rate = rate if rate is not None else DEFAULT_LEARNING_RATE
        self._check_learning_rate(self.learning_rate)
        self.gamma = spec.gamma if spec.gamma is not None else DEFAULT_GAMMA
        requested = spec.iteration_steps or DEFAULT_ITERATION_STEPS
        if requested < self.population:
            raise ConfigurationError(
                f"iteration_steps={requested} gives the {self.population} candidates no step "
                "each: raise iteration_steps or lower backend_options.population"
            )
        # Every candidate gets the same number of steps: the declared value is rounded down to a
        # multiple of the population (and is exactly what an iteration collects, whatever n_envs).
        self.candidate_steps = requested // self.population
        self.iteration_steps = self.candidate_steps * self.population
        self.spec = spec
        self.env_source = env
        # n_envs envs step in lockstep, each scoring its own candidate: the population is
        # scored in rounds of n_envs candidates.
        self.envs = [env.make() for _ in range(spec.n_envs)]
        # A Discrete or a Box (`discrete` tells which); observations are a Box.
        action_space: Any = env.action_space
        observation_space: Any = env.observation_space
        self.action_space = action_space
        self.discrete = space_kind(action_space) == "discrete"
        inputs = int(np.prod(observation_space.shape))
        outputs = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        network = spec.network
        self.policy = PolicyNetwork(
            inputs, outputs, network.hidden if network else [], network.activation if network else "tanh"
        )
        self.rng = np.random.default_rng(spec.seed)
        self.mean = self.rng.normal(0.0, 0.1, size=self.policy.size)
        self.std = np.full(self.policy.size, float(options["init_std"]))
        self.steps = 0

    @staticmethod
    def _check_learning_rate(value: float) -> None:
        if not 0 <= value <= 1:
            raise ConfigurationError(
                "cem's learning_rate is the smoothing factor of its mean and spread, in [0, 1] "
                f"(0 freezes them); got {value}"
            )

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> Self:
        """A fresh CEM search around small random weights."""
        return cls(spec, env)

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> Self:
        """Restore the search distribution, counters and random state saved by `save`."""
        params, state = directory / PARAMS_FILE, directory / STATE_FILE
        if not params.is_file() or not state.is_file():
            raise CorruptCheckpointError(
                f"{directory} lacks {PARAMS_FILE} or {STATE_FILE}: not a cem checkpoint"
            )
        driver = cls(spec, env)
        with np.load(params, allow_pickle=False) as arrays:
            driver.mean, driver.std = arrays["mean"], arrays["std"]
        if driver.mean.shape != (driver.policy.size,) or driver.std.shape != (driver.policy.size,):
            raise CorruptCheckpointError(
                f"{params} holds mean {driver.mean.shape} and std {driver.std.shape}; the spec's "
                f"network has {driver.policy.size} weights"
            )
        saved = json.loads(state.read_text())
        driver.steps = int(saved["env_steps"])
        driver.learning_rate = float(saved["learning_rate"])
        driver.rng.bit_generator.state = saved["rng"]
        return driver

    # -- acting --------------------------------------------------------------------------------
    def _actions(self, weights: np.ndarray, observations: Any, deterministic: bool) -> np.ndarray:
        x = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
        out = self.policy.forward(weights, x)
        if self.discrete:
            if deterministic:
                return out.argmax(axis=1)
            probabilities = np.exp(out - out.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            cumulative = probabilities.cumsum(axis=1)
            draws = self.rng.random((len(out), 1))
            return np.minimum((draws > cumulative).sum(axis=1), out.shape[1] - 1)
        low = self.action_space.low.reshape(-1)
        high = self.action_space.high.reshape(-1)
        bounded = np.isfinite(low) & np.isfinite(high)
        span = np.where(bounded, high - low, 1.0)
        actions = np.where(bounded, low + (np.tanh(out) + 1.0) / 2.0 * span, out)
        if not deterministic:
            actions = actions + self.rng.normal(size=actions.shape) * self.action_noise * span
            actions = np.clip(actions, low, high)
        return actions.reshape(len(out), *self.action_space.shape)

    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        """Actions of the mean weights (deterministic) or sampled from the policy's distribution."""
        return self._actions(self.mean, observations, deterministic)

    # -- training ------------------------------------------------------------------------------
    def _reset(self, env: Any) -> Any:
        """A new episode, seeded from the agent's generator (so resets replay after a load)."""
        observation, _ = env.reset(seed=int(self.rng.integers(2**31 - 1)))
        return observation

    def _score(self, candidates: np.ndarray) -> tuple[np.ndarray, list[tuple[float, int]]]:
        """Run len(candidates) <= n_envs candidates in lockstep, one per env, candidate_steps each.

        Returns each candidate's score (the mean discounted return of the episodes it finished,
        or of its unfinished one if it finished none) and the (return, length) of every episode
        that ended.
        """
        envs = self.envs[: len(candidates)]
        observations = [self._reset(env) for env in envs]
        finished: list[list[float]] = [[] for _ in envs]  # discounted returns of ended episodes
        discounted, returns = [0.0] * len(envs), [0.0] * len(envs)
        lengths, discounts = [0] * len(envs), [1.0] * len(envs)
        ended: list[tuple[float, int]] = []
        for step in range(1, self.candidate_steps + 1):
            for index, (env, weights) in enumerate(zip(envs, candidates, strict=True)):
                action = self._actions(weights, np.asarray(observations[index])[None], deterministic=False)[0]
                observation, reward, terminated, truncated, _ = env.step(
                    int(action) if self.discrete else action
                )
                discounted[index] += discounts[index] * float(reward)
                returns[index] += float(reward)
                lengths[index] += 1
                discounts[index] *= self.gamma
                if terminated or truncated:
                    finished[index].append(discounted[index])
                    ended.append((returns[index], lengths[index]))
                    discounted[index], returns[index], lengths[index], discounts[index] = 0.0, 0.0, 0, 1.0
                    if step < self.candidate_steps:  # its budget goes on: a new episode
                        observation = self._reset(env)
                observations[index] = observation
        scores = [np.mean(done) if done else last for done, last in zip(finished, discounted, strict=True)]
        return np.array(scores, dtype=np.float64), ended

    def train_iteration(self) -> DriverReport:
        """Score a population of weight vectors and move the search towards the elite ones."""
        candidates = self.mean + self.std * self.rng.normal(size=(self.population, self.policy.size))
        scores = np.empty(self.population)
        episodes: list[tuple[float, int]] = []
        width = len(self.envs)  # candidates scored side by side, one per env
        for first in range(0, self.population, width):
            scores[first : first + width], ended = self._score(candidates[first : first + width])
            episodes.extend(ended)
        elite_count = max(1, round(self.population * self.elite_fraction))
        elite_indices = np.argsort(scores, kind="stable")[-elite_count:]
        elite = candidates[elite_indices]
        rate = self.learning_rate
        if rate > 0:  # at 0 the distribution stays exactly as it is
            self.mean = (1 - rate) * self.mean + rate * elite.mean(axis=0)
            self.std = (1 - rate) * self.std + rate * (elite.std(axis=0) + self.noise_floor)
        self.steps += self.iteration_steps
        return DriverReport(
            env_steps=self.iteration_steps,
            episodes=episodes,
            # CEM is gradient-free: what it maximises is the elite candidates' score, so the loss
            # it reports is minus their mean score (discounted return per episode, see _score).
            losses={"loss": -float(scores[elite_indices].mean())},
            metrics={
                "score_mean": float(scores.mean()),
                "score_elite_min": float(scores[elite_indices[0]]),
                "std_mean": float(self.std.mean()),
            },
        )

    @property
    def env_steps(self) -> int:
        """Env steps over the agent's life (saved and restored)."""
        return self.steps

    # -- learning rate -------------------------------------------------------------------------
    def get_learning_rate(self) -> float:
        """The smoothing factor of the mean and spread updates."""
        return self.learning_rate

    def set_learning_rate(self, value: float) -> None:
        """Change the smoothing factor from the next iteration on (0 freezes mean and std)."""
        self._check_learning_rate(value)
        self.learning_rate = float(value)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """The search distribution, the counters and the random state."""
        np.savez(directory / PARAMS_FILE, mean=self.mean, std=self.std)
        state = {
            "env_steps": self.steps,
            "learning_rate": self.learning_rate,
            "rng": self.rng.bit_generator.state,
        }
        (directory / STATE_FILE).write_text(json.dumps(state))

    # -- introspection -------------------------------------------------------------------------
    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """What the driver holds (it is its own native object)."""
        return EffectiveHyperparameters(
            learning_rate=self.learning_rate,
            gamma=self.gamma,
            hidden=list(self.policy.hidden),
            activation=self.policy.activation if self.policy.hidden else "none",
            n_envs=len(self.envs),
            batch_size=None,
            iteration_steps=self.iteration_steps,
            device="cpu",  # NumPy: always, and a spec asking for a GPU is refused at creation
            native={
                "population": self.population,
                "elite_fraction": self.elite_fraction,
                "noise_floor": self.noise_floor,
                "action_noise": self.action_noise,
                "parameters": self.policy.size,
                "candidate_steps": self.candidate_steps,
            },
        )

    def parameters(self) -> dict[str, np.ndarray]:
        """What an iteration updates: the search distribution's mean and spread (copies)."""
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    def native(self) -> dict[str, np.ndarray]:
        """The search distribution (there is no wrapped library object)."""
        return {"mean": self.mean, "std": self.std}

    def close(self) -> None:
        """Close the envs."""
        for env in self.envs:
            env.close()
