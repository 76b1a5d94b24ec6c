"""A backend whose quality is a spec field, for tuning tests: the sampled value decides the score.

The "tunable" backends are the fake backend (tests/fake_backend.py) with a deterministic policy
that balances CartPole when the learning rate is at least GOOD_LEARNING_RATE and pushes left
otherwise (about 9 steps an episode), so a search space over the learning rate has a known
good and a known bad value. backend_options: "explode" makes training raise (a trial that
fails at run time); "sleep" (seconds) slows every iteration down (trials that overlap); any
other key is refused when the agent is built, as the real backends refuse an unknown option.
The environment variable POLYRL_TUNE_TEST_INTERRUPT makes training raise KeyboardInterrupt.

Registered in-process by the tests' fixture, and as an installed plugin (entry point
`tune_backend:plugin`) for worker processes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import polyrl
from fake_backend import FakeDriver
from polyrl import AgentSpec
from polyrl.backend import AlgorithmInfo, BackendInfo, DriverReport, EnvSource
from polyrl.driverkit import unknown_options_error

GOOD_LEARNING_RATE = 0.01
INTERRUPT_VARIABLE = "POLYRL_TUNE_TEST_INTERRUPT"
OPTIONS = ("explode", "sleep")


class TunableDriver(FakeDriver):
    """FakeDriver whose greedy actions balance the pole when the learning rate is good."""

    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> TunableDriver:
        unknown = set(spec.backend_options) - set(OPTIONS)
        if unknown:
            raise unknown_options_error(spec.backend, spec.algorithm, unknown, OPTIONS)
        return cls(spec, env)

    def train_iteration(self) -> DriverReport:
        if os.environ.get(INTERRUPT_VARIABLE):  # as Ctrl-C would, in the middle of a trial
            raise KeyboardInterrupt
        if self.spec.backend_options.get("explode"):
            raise FloatingPointError("the loss became NaN (backend_options.explode)")
        pause = self.spec.backend_options.get("sleep")
        if isinstance(pause, int | float):
            time.sleep(float(pause))
        return super().train_iteration()

    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        if not deterministic:
            return super().act(observations, deterministic)
        batch = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
        if (self.spec.learning_rate or 0.0) >= GOOD_LEARNING_RATE:
            return (batch[:, 2] + 0.5 * batch[:, 3] > 0).astype(np.int64)  # lean into the fall
        return np.zeros(len(batch), dtype=np.int64)


def _info(name: str) -> BackendInfo:
    return BackendInfo(
        name=name,
        description="fake backend whose score is its learning rate (tuning tests)",
        driver="tune_backend:TunableDriver",
        library="numpy",
        requires=["numpy"],
        install_hint="numpy",
        algorithms={"linear": AlgorithmInfo(action_spaces=["discrete", "box"], on_policy=True)},
    )


class TunablePlugin:
    """Declares the backends "tunable" and "tunable_b" (the same driver, two names to compare)."""

    @polyrl.backend.hookimpl
    def polyrl_backends(self) -> list[BackendInfo]:
        return [_info("tunable"), _info("tunable_b")]


plugin = TunablePlugin()
