"""The learning rate a callback sets reaches the backend's optimizer."""

from __future__ import annotations

import pytest

from polyrl_conformance.scenario import AlgorithmScenario


def test_learning_rate(scenario: AlgorithmScenario) -> None:
    """Records report the spec's learning rate; after a callback sets context.learning_rate in
    on_iteration_end, the driver reads the new value back at once, the next iteration's record
    still reports it (training did not reset it), and effective_hyperparameters() holds it."""
    twin = scenario.twin()
    new = scenario.new_learning_rate()
    assert twin.result.records[0].learning_rate == pytest.approx(scenario.spec.learning_rate, rel=1e-6)
    if twin.changer.error is not None:
        raise AssertionError(f"setting the learning rate raised {twin.changer.error!r}")
    assert twin.changer.read_back == pytest.approx(new, rel=1e-6), (
        f"set {new}, the driver read back {twin.changer.read_back}"
    )
    if twin.after_error is not None:
        raise AssertionError(f"training after the change raised {twin.after_error!r}")
    assert twin.after is not None
    assert twin.after.records[0].learning_rate == pytest.approx(new, rel=1e-6), (
        f"one iteration after setting {new}, the optimizer uses {twin.after.records[0].learning_rate}"
    )
    assert twin.effective_learning_rate == pytest.approx(new, rel=1e-6)
