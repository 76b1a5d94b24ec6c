"""A tiny pure-NumPy backend used to test the core without any RL library.

Registered on the process registry exactly as an installed plugin would be (a module-like
object with a `polyrl_backends` hookimpl), so these tests also cover the plugin interface.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polyrl
from polyrl import AgentSpec
from polyrl.backend import BackendDriver, DriverReport, EffectiveHyperparameters, EnvSource

CREATED: list[AgentSpec] = []


class FakeDriver(BackendDriver):
    """A linear policy that random-walks its weights; one iteration = `iteration_steps` steps."""

    def __init__(self, spec: AgentSpec, env: EnvSource) -> None:
        self.spec = spec
        self.env_source = env
        self.env = env.make()
        self.rng = np.random.default_rng(spec.seed)
        obs_dim = int(np.prod(env.observation_space.shape))
        self.discrete = hasattr(env.action_space, "n")
        out = int(env.action_space.n) if self.discrete else int(np.prod(env.action_space.shape))
        self.weights = self.rng.normal(size=(obs_dim, out))
        self.lr = spec.learning_rate or 0.01
        self.steps = 0
        self.chunk = spec.iteration_steps or 100
        self.obs, _ = self.env.reset(seed=spec.seed)
        self.episode_return, self.episode_length = 0.0, 0

    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> FakeDriver:
        CREATED.append(spec)
        return cls(spec, env)

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> FakeDriver:
        driver = cls(spec, env)
        driver.weights = np.load(directory / "weights.npy")
        state = json.loads((directory / "state.json").read_text())
        driver.steps, driver.lr = state["steps"], state["lr"]
        return driver

    def train_iteration(self) -> DriverReport:
        episodes = []
        for _ in range(self.chunk):
            observation = np.asarray(self.obs)
            action = self.act(observation[None], deterministic=False)[0]
            self.obs, reward, terminated, truncated, _ = self.env.step(action)
            self.on_transition(observation, action, reward, np.asarray(self.obs), terminated, truncated)
            self.episode_return += float(reward)
            self.episode_length += 1
            self.steps += 1
            if terminated or truncated:
                episodes.append((self.episode_return, self.episode_length))
                self.obs, _ = self.env.reset()
                self.episode_return, self.episode_length = 0.0, 0
        self.weights += self.lr * self.rng.normal(size=self.weights.shape)
        return DriverReport(env_steps=self.chunk, episodes=episodes, losses={"loss": 1.0})

    def on_transition(self, *step: Any) -> None:
        """Called after every env step with (observation, action, reward, next observation,
        terminated, truncated), before an ended episode's reset; subclasses keep what they need."""

    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        logits = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1) @ self.weights
        if not deterministic:
            logits = logits + self.rng.normal(size=logits.shape)
        if self.discrete:
            return logits.argmax(axis=1)
        return np.tanh(logits) * 2.0

    def get_learning_rate(self) -> float:
        return self.lr

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights.copy()}

    def set_learning_rate(self, value: float) -> None:
        self.lr = value

    def save(self, directory: Path) -> None:
        np.save(directory / "weights.npy", self.weights)
        (directory / "state.json").write_text(json.dumps({"steps": self.steps, "lr": self.lr}))

    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        return EffectiveHyperparameters(
            learning_rate=self.lr,
            gamma=self.spec.gamma or 0.99,
            hidden=[],
            activation="none",
            n_envs=1,
            iteration_steps=self.chunk,
        )

    @property
    def env_steps(self) -> int:
        return self.steps

    def close(self) -> None:
        self.env.close()


class FakePlugin:
    """The plugin object: declares the "fake" backend and one with a missing library."""

    @polyrl.backend.hookimpl
    def polyrl_backends(self) -> list[polyrl.backend.BackendInfo]:
        return [
            polyrl.backend.BackendInfo(
                name="fake",
                description="test backend",
                driver="fake_backend:FakeDriver",
                library="numpy",
                requires=["numpy"],
                install_hint="numpy",
                algorithms={
                    "linear": polyrl.backend.AlgorithmInfo(action_spaces=["discrete", "box"], on_policy=True),
                    "discrete_only": polyrl.backend.AlgorithmInfo(action_spaces=["discrete"], on_policy=True),
                },
            ),
            polyrl.backend.BackendInfo(
                name="ghost",
                description="a backend whose library is not installed",
                driver="ghost_lib_polyrl_test.driver:Driver",
                library="ghost-lib",
                requires=["ghost_lib_polyrl_test"],
                install_hint="'polyrl[ghost]'",
                algorithms={"ppo": polyrl.backend.AlgorithmInfo(action_spaces=["discrete"], on_policy=True)},
            ),
        ]
