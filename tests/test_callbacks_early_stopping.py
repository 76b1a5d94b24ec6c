"""EarlyStopping: patience, min_delta, target and restore_best, on every backend."""

from __future__ import annotations

import numpy as np
import polyrl
import pytest
from callbacks_support import Scripted, backend_fixture, make_agent
from polyrl import Agent, TrainConfig
from polyrl.callbacks import EarlyStopping, ModelCheckpoint

backend = backend_fixture()


def test_patience_stops_at_the_expected_iteration(backend):
    agent = make_agent(backend)
    stopper = EarlyStopping(monitor="score", patience=2)
    result = agent.train(TrainConfig(iterations=20), callbacks=[Scripted([1, 2, 3, 3, 2.5, 9]), stopper])
    # Best 3 at iteration 3; iterations 4 and 5 do not improve: stop after iteration 5.
    assert agent.iterations == 5 and stopper.stopped_iteration == 5
    assert (stopper.best_value, stopper.best_iteration) == (3.0, 3)
    assert result.stop_reason == (
        "EarlyStopping: score did not improve by more than 0 for 2 iterations (best 3 at iteration 3)"
    )


def test_target_stops_when_reached(backend):
    agent = make_agent(backend)
    steps = agent.effective_hyperparameters().iteration_steps
    stopper = EarlyStopping(monitor="env_steps", target=3 * steps, patience=None)
    result = agent.train(iterations=10, callbacks=[stopper])
    assert agent.iterations == 3 and agent.env_steps == 3 * steps
    assert result.stop_reason.startswith(f"EarlyStopping: env_steps = {3 * steps} reached the target")


def test_restore_best_puts_the_agent_back_at_its_best_iteration(backend, tmp_path):
    agent = make_agent(backend)
    steps = agent.effective_hyperparameters().iteration_steps
    stopper = EarlyStopping(monitor="score", patience=2, restore_best=True)
    checkpoints = ModelCheckpoint(tmp_path, monitor="score")
    agent.train(iterations=10, callbacks=[Scripted([1, 5, 2, 2]), checkpoints, stopper])
    assert stopper.stopped_iteration == 4
    assert (agent.iterations, agent.env_steps) == (2, 2 * steps)
    observations = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    at_best = Agent.load(tmp_path / "iteration-000002")
    assert np.array_equal(agent.act(observations), at_best.act(observations))
    agent.train(iterations=1)  # still trainable, counters continue from the best iteration
    assert agent.iterations == 3


def test_min_delta_and_arguments(fake_backend):
    agent = make_agent("fake")
    stopper = EarlyStopping(monitor="score", patience=2, min_delta=0.2)
    agent.train(iterations=10, callbacks=[Scripted([1, 1.05, 1.1, 5]), stopper])
    assert stopper.stopped_iteration == 3 and stopper.best_iteration == 1
    with pytest.raises(polyrl.errors.ConfigurationError, match="needs a patience, a target, or both"):
        EarlyStopping(patience=None)
    with pytest.raises(polyrl.errors.ConfigurationError, match="patience must be an integer"):
        EarlyStopping(patience=0)
