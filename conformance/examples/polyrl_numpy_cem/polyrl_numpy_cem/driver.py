"""CemDriver: the cross-entropy method over the weights of a NumPy policy network.

One polyrl iteration: sample `population` weight vectors from N(mean, std), score each by the
discounted return of one rollout (at most `iteration_steps // population` env steps, starting
from a reset), and move mean and std towards those of the elite candidates by
`learning_rate`. Deterministic actions use the mean weights.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from polyrl import (
    AgentSpec,
    BackendDriver,
    ConfigurationError,
    CorruptCheckpointError,
    EffectiveHyperparameters,
    EnvSource,
    IterationReport,
    UnsupportedOptionError,
)
from polyrl.envs import space_kind

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


ACTIVATIONS = {
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
        unknown = sorted(set(spec.backend_options) - set(OPTIONS))
        if unknown:
            raise UnsupportedOptionError(
                f"cem has no backend option(s) {unknown}; it accepts {sorted(OPTIONS)}"
            )
        if spec.n_envs != 1:
            raise UnsupportedOptionError("cem scores candidates one after another in one env: set n_envs=1")
        if spec.batch_size is not None:
            raise UnsupportedOptionError("cem has no batch size: remove batch_size (set iteration_steps)")
        options = {**OPTIONS, **spec.backend_options}
        self.population = int(options["population"])  # type: ignore[arg-type]
        self.elite_fraction = float(options["elite_fraction"])  # type: ignore[arg-type]
        self.noise_floor = float(options["noise_floor"])  # type: ignore[arg-type]
        self.action_noise = float(options["action_noise"])  # type: ignore[arg-type]
        if self.population < 2 or not 0 < self.elite_fraction <= 1:
            raise ConfigurationError("cem needs population >= 2 and 0 < elite_fraction <= 1")
        self.learning_rate = spec.learning_rate if spec.learning_rate is not None else DEFAULT_LEARNING_RATE
        self._check_learning_rate(self.learning_rate)
        self.gamma = spec.gamma if spec.gamma is not None else DEFAULT_GAMMA
        self.iteration_steps = spec.iteration_steps or DEFAULT_ITERATION_STEPS
        if self.iteration_steps < self.population:
            raise ConfigurationError(
                f"iteration_steps={self.iteration_steps} gives the {self.population} candidates no step "
                "each: raise iteration_steps or lower backend_options.population"
            )
        self.spec = spec
        self.env_source = env
        self.env = env.make()
        self.action_space = env.action_space
        self.discrete = space_kind(env.action_space) == "discrete"
        inputs = int(np.prod(env.observation_space.shape))
        outputs = int(env.action_space.n) if self.discrete else int(np.prod(env.action_space.shape))
        network = spec.network
        self.policy = PolicyNetwork(
            inputs, outputs, network.hidden if network else [], network.activation if network else "tanh"
        )
        self.rng = np.random.default_rng(spec.seed)
        self.mean = self.rng.normal(0.0, 0.1, size=self.policy.size)
        self.std = np.full(self.policy.size, float(options["init_std"]))  # type: ignore[arg-type]
        self.steps = 0
        self._next_reset_seed = spec.seed

    @staticmethod
    def _check_learning_rate(value: float) -> None:
        if not 0 < value <= 1:
            raise ConfigurationError(
                f"cem's learning_rate is the smoothing factor of its mean and spread, in (0, 1]; got {value}"
            )

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> CemDriver:
        """A fresh CEM search around small random weights."""
        return cls(spec, env)

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> CemDriver:
        """Restore the search distribution, counters and random state saved by `save`."""
        params, state = directory / PARAMS_FILE, directory / STATE_FILE
        if not params.is_file() or not state.is_file():
            raise CorruptCheckpointError(
                f"{directory} lacks {PARAMS_FILE} or {STATE_FILE}: not a cem checkpoint"
            )
        driver = cls(spec, env)
        with np.load(params) as arrays:
            driver.mean, driver.std = arrays["mean"], arrays["std"]
        saved = json.loads(state.read_text())
        driver.steps = int(saved["env_steps"])
        driver.learning_rate = float(saved["learning_rate"])
        driver.rng.bit_generator.state = saved["rng"]
        driver._next_reset_seed = None
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
    def _rollout(self, weights: np.ndarray, horizon: int) -> tuple[float, int, tuple[float, int] | None]:
        """Score one candidate: (discounted return, steps, finished episode or None)."""
        observation, _ = self.env.reset(seed=self._next_reset_seed)
        self._next_reset_seed = None
        score, total, discount = 0.0, 0.0, 1.0
        for step in range(1, horizon + 1):
            action = self._actions(weights, np.asarray(observation)[None], deterministic=False)[0]
            if self.discrete:
                action = int(action)
            observation, reward, terminated, truncated, _ = self.env.step(action)
            score += discount * float(reward)
            total += float(reward)
            discount *= self.gamma
            if terminated or truncated:
                return score, step, (total, step)
        return score, horizon, None

    def train_iteration(self) -> IterationReport:
        """Score a population of weight vectors and move the search towards the elite ones."""
        horizon = self.iteration_steps // self.population
        candidates = self.mean + self.std * self.rng.normal(size=(self.population, self.policy.size))
        scores = np.empty(self.population)
        episodes: list[tuple[float, int]] = []
        collected = 0
        for index, weights in enumerate(candidates):
            scores[index], steps, episode = self._rollout(weights, horizon)
            collected += steps
            if episode is not None:
                episodes.append(episode)
        elite_count = max(1, round(self.population * self.elite_fraction))
        elite = candidates[np.argsort(scores)[-elite_count:]]
        rate = self.learning_rate
        self.mean = (1 - rate) * self.mean + rate * elite.mean(axis=0)
        self.std = (1 - rate) * self.std + rate * (elite.std(axis=0) + self.noise_floor)
        self.steps += collected
        return IterationReport(
            env_steps=collected,
            episodes=episodes,
            metrics={
                "score_mean": float(scores.mean()),
                "score_elite_min": float(np.sort(scores)[-elite_count]),
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
        """Change the smoothing factor from the next iteration on."""
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
            n_envs=1,
            batch_size=None,
            iteration_steps=self.iteration_steps,
            native={
                "population": self.population,
                "elite_fraction": self.elite_fraction,
                "noise_floor": self.noise_floor,
                "action_noise": self.action_noise,
                "parameters": self.policy.size,
            },
        )

    def native(self) -> dict[str, np.ndarray]:
        """The search distribution (there is no wrapped library object)."""
        return {"mean": self.mean, "std": self.std}

    def close(self) -> None:
        """Close the env."""
        self.env.close()
