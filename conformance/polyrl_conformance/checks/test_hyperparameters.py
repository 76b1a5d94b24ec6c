"""The spec's hyperparameters are what the native library object holds."""

from __future__ import annotations

import pytest

from polyrl_conformance.scenario import AlgorithmScenario


def test_effective_hyperparameters(scenario: AlgorithmScenario) -> None:
    """effective_hyperparameters(), read back from the native library object, holds the spec's gamma,
    learning rate, network hidden sizes and activation, and number of envs."""
    spec = scenario.spec
    effective = scenario.trained().agent.effective_hyperparameters()
    assert spec.gamma is not None and spec.learning_rate is not None and spec.network is not None
    assert effective.gamma == pytest.approx(spec.gamma, rel=1e-6)
    assert effective.learning_rate == pytest.approx(spec.learning_rate, rel=1e-6)
    assert effective.hidden == spec.network.hidden
    assert effective.activation == spec.network.activation
    assert effective.n_envs == spec.n_envs
