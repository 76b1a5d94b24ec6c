"""A callback whose output location is not writable fails when training starts, naming the path."""

from __future__ import annotations

import pytest
from callbacks_support import backend_fixture, make_agent, unwritable
from polyrl.callbacks import (
    APICallLogger,
    CSVLogger,
    JSONLinesLogger,
    ModelCheckpoint,
    MovieRecorder,
    PlotCallback,
    RunConfigLogger,
    TensorBoard,
)
from polyrl.errors import CallbackError, ConfigurationError

backend = backend_fixture()

WRITERS = {
    "ModelCheckpoint": lambda path: ModelCheckpoint(path),
    "CSVLogger": lambda path: CSVLogger(path / "log.csv"),
    "JSONLinesLogger": lambda path: JSONLinesLogger(path / "log.jsonl"),
    "RunConfigLogger": lambda path: RunConfigLogger(path / "run.json"),
    "TensorBoard": lambda path: TensorBoard(path),
    "PlotCallback": lambda path: PlotCallback(path / "plot.png"),
    "MovieRecorder": lambda path: MovieRecorder(path, every=1),
    "APICallLogger": lambda path: APICallLogger(path / "api.log"),
}


def test_unwritable_directories_fail_before_the_first_iteration(backend, tmp_path):
    agent = make_agent(backend)
    path = unwritable(tmp_path)
    for name, make in WRITERS.items():
        with pytest.raises(CallbackError) as info:
            agent.train(iterations=5, callbacks=[make(path)])
        message = str(info.value)
        assert name in message and str(path) in message and "cannot write" in message, message
        assert info.value.hook == "on_train_begin" and isinstance(info.value.__cause__, ConfigurationError)
    assert agent.iterations == 0
