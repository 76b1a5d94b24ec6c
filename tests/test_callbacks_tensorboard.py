"""TensorBoard: the event files hold every iteration's scalars, on every backend and both writers."""

from __future__ import annotations

import pytest
from callbacks_support import backend_fixture, make_agent
from polyrl.callbacks import TensorBoard

backend = backend_fixture()


def scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return accumulator


def test_scalars_per_iteration(backend, tmp_path):
    pytest.importorskip("tensorboard")
    agent = make_agent(backend)
    result = agent.train(iterations=3, callbacks=[TensorBoard(tmp_path)])
    events = scalars(tmp_path)
    tags = set(events.Tags()["scalars"])
    assert {"return_mean", "loss", "learning_rate", "env_steps", "steps_per_second"} <= tags
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == [r.env_steps for r in result.records]
    assert [e.value for e in loss] == pytest.approx([r.losses["loss"] for r in result.records], rel=1e-6)
    assert any(tag.startswith("spec") for tag in events.Tags()["tensors"])


def test_torch_writer_and_iteration_steps(fake_backend, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    agent = make_agent("fake")
    agent.train(iterations=2, callbacks=[TensorBoard(tmp_path, step="iteration", writer="torch")])
    assert [e.step for e in scalars(tmp_path).Scalars("iteration")] == [1, 2]
