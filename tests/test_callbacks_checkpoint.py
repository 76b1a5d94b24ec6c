"""ModelCheckpoint and the monitor-name checks, on every backend of callbacks_support.BACKENDS."""

from __future__ import annotations

import json

import numpy as np
import polyrl
import pytest
from callbacks_support import Scripted, backend_fixture, make_agent
from polyrl import Agent, TrainConfig
from polyrl.callbacks import ModelCheckpoint, UnknownMetricError
from polyrl.callbacks.monitor import Monitor, resolve_metric_name
from polyrl.errors import CallbackError

backend = backend_fixture()


def test_best_checkpoint_says_when_and_why_and_keep_last_prunes(backend, tmp_path):
    agent = make_agent(backend)
    checkpoint = ModelCheckpoint(tmp_path / "ckpt", monitor="score", keep_last=2)
    result = agent.train(TrainConfig(iterations=6), callbacks=[Scripted([1, 3, 2, 5, 4, 4]), checkpoint])
    assert result.iterations == 6

    best = polyrl.Agent.load(tmp_path / "ckpt" / "best")
    manifest = json.loads((tmp_path / "ckpt" / "best" / "polyrl.json").read_text())
    assert manifest["metadata"]["iteration"] == 4
    assert manifest["metadata"]["value"] == 5.0
    assert manifest["metadata"]["monitor"] == "score" and manifest["metadata"]["mode"] == "max"
    assert best.iterations == 4 and best.env_steps == result.records[3].env_steps
    assert (checkpoint.best_iteration, checkpoint.best_value) == (4, 5.0)

    periodic = sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.name.startswith("iteration-"))
    assert periodic == ["iteration-000005", "iteration-000006"]
    index = json.loads((tmp_path / "ckpt" / "checkpoints.json").read_text())
    assert index["best"] == {"path": "best", "iteration": 4, "value": 5.0}
    assert index["periodic"] == periodic
    latest = Agent.load(tmp_path / "ckpt" / "iteration-000006")
    observations = np.zeros((3, 4), dtype=np.float32)
    assert np.array_equal(latest.act(observations), agent.act(observations))


def test_every_n_and_save_best_only(backend, tmp_path):
    agent = make_agent(backend)
    checkpoint = ModelCheckpoint(tmp_path, monitor="score", every=2, save_best_only=True, save_last=True)
    agent.train(iterations=4, callbacks=[Scripted([9, 1, 9, 3]), checkpoint])
    # Only iterations 2 and 4 are looked at: the 9s of iterations 1 and 3 never count.
    assert (checkpoint.best_iteration, checkpoint.best_value) == (4, 3.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoints.json", "last"]
    assert Agent.load(tmp_path / "last").iterations == 4


def test_best_by_real_return_and_by_episode_length(backend, tmp_path):
    agent = make_agent(backend)
    by_return = ModelCheckpoint(tmp_path / "return", save_best_only=True)  # return_mean, max
    by_length = ModelCheckpoint(
        tmp_path / "length", monitor="episode_length", mode="min", save_best_only=True
    )
    result = agent.train(iterations=4, callbacks=[by_return, by_length])
    returns = [(r.return_mean, -r.iteration) for r in result.records if r.return_mean is not None]
    best_return, minus_iteration = max(returns)
    assert (by_return.best_value, by_return.best_iteration) == (best_return, -minus_iteration)
    lengths = [
        (r.episode_length_mean, r.iteration) for r in result.records if r.episode_length_mean is not None
    ]
    assert (by_length.best_value, by_length.best_iteration) == min(lengths)
    metadata = polyrl.Agent.load(tmp_path / "length" / "best")
    assert metadata.iterations == by_length.best_iteration
    manifest = json.loads((tmp_path / "length" / "best" / "polyrl.json").read_text())["metadata"]
    assert manifest["monitor"] == "episode_length_mean" and manifest["mode"] == "min"


def test_typo_in_monitor_fails_before_training_listing_the_names(backend, tmp_path):
    agent = make_agent(backend)
    with pytest.raises(CallbackError) as info:
        agent.train(iterations=3, callbacks=[ModelCheckpoint(tmp_path, monitor="retrun_mean")])
    assert isinstance(info.value.__cause__, UnknownMetricError)
    message = str(info.value)
    assert "did you mean 'return_mean'" in message and "episode_length_mean" in message and "loss" in message
    assert agent.iterations == 0


def test_unknown_backend_metric_fails_at_the_first_iteration_listing_recorded_names(backend, tmp_path):
    agent = make_agent(backend)
    with pytest.raises(CallbackError) as info:
        agent.train(iterations=3, callbacks=[ModelCheckpoint(tmp_path, monitor="flux_capacitance")])
    message = str(info.value)
    assert "'flux_capacitance', which this run does not record" in message
    assert "'iteration_seconds'" in message and "'loss'" in message
    assert agent.iterations == 1


def test_eval_monitor_needs_evaluation(backend, tmp_path):
    agent = make_agent(backend)
    with pytest.raises(CallbackError, match=r"does not evaluate: set TrainConfig\(eval_every=N\)"):
        agent.train(iterations=2, callbacks=[ModelCheckpoint(tmp_path, monitor="eval_return")])
    assert agent.iterations == 0


def test_monitor_names_and_modes():
    assert resolve_metric_name("episode_length") == "episode_length_mean"
    assert resolve_metric_name("eval_return") == "eval_return_mean"
    assert Monitor("loss").mode == "min" and Monitor("critic_loss").mode == "min"
    assert Monitor("return_mean").mode == "max" and Monitor("episode_length").mode == "max"
    monitor = Monitor("loss", min_delta=0.1)
    assert (
        monitor.better(0.85, 1.0) and not monitor.better(0.95, 1.0) and not monitor.better(float("nan"), 1.0)
    )
    with pytest.raises(polyrl.errors.ConfigurationError, match="mode must be"):
        Monitor("loss", mode="up")
    with pytest.raises(polyrl.errors.ConfigurationError, match="keep_last must be an integer >= 1"):
        ModelCheckpoint("x", keep_last=0)
