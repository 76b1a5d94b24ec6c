"""LearningRateScheduler and ReduceLROnPlateau reach the backend's optimizer, on every backend."""

from __future__ import annotations

import math

import polyrl
import pytest
from callbacks_support import Scripted, backend_fixture, make_agent
from polyrl import TrainConfig
from polyrl.callbacks import LearningRateScheduler, ReduceLROnPlateau

backend = backend_fixture()


def native_rates(agent) -> list[float]:
    """Learning rates read from the library's own optimizer objects, where we know where they are."""
    if agent.spec.backend == "sb3":
        return [group["lr"] for group in agent.native.policy.optimizer.param_groups]
    if agent.spec.backend == "fake":
        return [agent._parts.driver.lr]
    return [agent.learning_rate]


def assert_rate_everywhere(agent, rate: float) -> None:
    assert math.isclose(agent.learning_rate, rate, rel_tol=1e-9)
    assert math.isclose(agent.effective_hyperparameters().learning_rate, rate, rel_tol=1e-9)
    assert all(math.isclose(r, rate, rel_tol=1e-9) for r in native_rates(agent))


def test_schedule_by_iteration_reaches_the_optimizer(backend):
    agent = make_agent(backend, learning_rate=1e-3)
    scheduler = LearningRateScheduler(lambda iteration: 1e-3 / iteration)
    result = agent.train(iterations=3, callbacks=[scheduler])
    assert [r.learning_rate for r in result.records] == pytest.approx([1e-3, 1e-3 / 2, 1e-3 / 3])
    assert scheduler.history == [(1, 1e-3), (2, 1e-3 / 2), (3, 1e-3 / 3)]
    assert_rate_everywhere(agent, 1e-3 / 3)


def test_schedule_by_progress_and_keras_style_two_arguments(backend):
    agent = make_agent(backend, learning_rate=1e-3)
    steps = agent.effective_hyperparameters().iteration_steps
    linear = LearningRateScheduler(lambda progress: 1e-3 * (1 - progress), by="progress")
    result = agent.train(TrainConfig(total_steps=4 * steps), callbacks=[linear])
    assert [r.learning_rate for r in result.records] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    halving = LearningRateScheduler(lambda iteration, rate: rate / 2)
    agent.train(iterations=2, callbacks=[halving])
    assert_rate_everywhere(agent, 2.5e-4 / 4)


def test_reduce_on_plateau_with_floor(backend):
    agent = make_agent(backend, learning_rate=1e-3)
    reducer = ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, min_lr=3e-4)
    result = agent.train(iterations=7, callbacks=[Scripted([1, 2, 2, 2, 2, 2, 2]), reducer])
    # No improvement at 3 and 4 -> halve at 4; again at 5 and 6 -> floor at 6.
    assert reducer.reductions == [(4, 1e-3, 5e-4), (6, 5e-4, 3e-4)]
    assert [r.learning_rate for r in result.records] == pytest.approx([1e-3] * 4 + [5e-4] * 2 + [3e-4])
    assert_rate_everywhere(agent, 3e-4)


def test_bad_schedules_are_errors(fake_backend):
    agent = make_agent("fake")
    with pytest.raises(polyrl.errors.CallbackError, match="the schedule returned -1 for iteration 1"):
        agent.train(iterations=1, callbacks=[LearningRateScheduler(lambda iteration: -1)])
    with pytest.raises(polyrl.errors.ConfigurationError, match="factor must be in"):
        ReduceLROnPlateau(factor=2)
