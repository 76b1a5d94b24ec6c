"""BrokenDriver: the CEM driver with two bugs plugin authors really make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from polyrl import AgentSpec
from polyrl.backend import EnvSource
from polyrl_numpy_cem.driver import CemDriver


class BrokenDriver(CemDriver):
    """CEM, except for 1-based Discrete actions and counters that restart after load."""

    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        """Bug 1: Discrete actions come out 1-based, so action n is outside Discrete(n)."""
        actions = super().act(observations, deterministic)
        return actions + 1 if self.discrete else actions

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> BrokenDriver:
        """Bug 2: the saved env-step count is not restored, so counters restart at zero."""
        driver = super().load(directory, spec, env)
        driver.steps = 0
        return driver
