"""Shared helpers of the callback tests: a backend-parametrized agent factory and scripted metrics.

Every callback test runs on each backend in BACKENDS (the fake NumPy backend for speed, and at
least one real library); add a backend here once its driver declares conformance_overrides.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import polyrl
import pytest
from polyrl import Agent, Callback
from polyrl.callbacks import declare_metrics

# More backends: POLYRL_CALLBACK_BACKENDS=fake,sb3,tianshou pytest tests/test_callbacks_*.py
BACKENDS = os.environ.get("POLYRL_CALLBACK_BACKENDS", "fake,sb3").split(",")
FAKE_STEPS = 50


def backend_fixture():
    """The `backend` fixture: each backend of BACKENDS in turn (skipped when not installed).

    Use as `backend = backend_fixture()` in a test module.
    """

    @pytest.fixture(params=BACKENDS, name="backend")
    def fixture(request: pytest.FixtureRequest) -> str:
        name = request.param
        if name == "fake":
            request.getfixturevalue("fake_backend")
            return name
        info = polyrl.registry().backend(name)
        if not all(importlib.util.find_spec(m) for m in info.requires):
            pytest.skip(f"{name} is not installed")
        return name

    return fixture


def make_agent(backend: str, **fields) -> Agent:
    """A tiny PPO-like agent on CartPole-v1 (seed 0) for `backend`; `fields` override the spec.

    Real backends start from their conformance_overrides and shrink further: one update of one
    64-step batch per iteration, since these tests check callbacks, not learning.
    """
    if backend == "fake":
        settings = {"algorithm": "linear", "iteration_steps": FAKE_STEPS}
    else:
        overrides = dict(polyrl.registry().backend(backend).conformance_overrides.get("ppo", {}))
        ppo = {**(overrides.pop("ppo", None) or {}), "n_epochs": 1}
        # No preset: its learning-rate schedule would change the rate these tests read back.
        settings = {"algorithm": "ppo", **overrides, "iteration_steps": 64, "batch_size": 64, "ppo": ppo}
        settings["preset"] = "none"
    settings = {"env": "CartPole-v1", "seed": 0, **settings, **fields}
    return Agent(backend=backend, **settings)


class Scripted(Callback):
    """Adds a made-up metric to each record from a script, so monitors see known values."""

    def __init__(self, values: list[float], name: str = "score") -> None:
        self.values = values
        self.name = name
        self.index = 0

    def on_train_begin(self, context):
        declare_metrics(context, self.name)
        self.index = 0

    def on_iteration_end(self, record):
        if self.index < len(self.values) and self.values[self.index] is not None:
            record.metrics[self.name] = float(self.values[self.index])
        self.index += 1


def unwritable(tmp_path: Path) -> Path:
    """A path no one can create, even root: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return blocker / "out"


class NoRenderEnv(gym.Env):
    """A one-dimensional env without any render mode."""

    metadata = {"render_modes": []}

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.render_mode = render_mode
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.steps += 1
        return np.zeros(2, dtype=np.float32), 1.0, self.steps >= 20, False, {}

    def render(self):
        return None


def make_no_render_env(render_mode: str | None = None) -> NoRenderEnv:
    """Factory of NoRenderEnv (importable, so a spec can store it)."""
    return NoRenderEnv(render_mode=render_mode)
