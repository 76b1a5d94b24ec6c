"""Shared fixtures: the fake backend registered like an installed plugin."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import polyrl
from fake_backend import FakePlugin


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """CI's long temporary path (.ci/run): POLYRL_TEST_BASETEMP becomes --basetemp unless one is given.

    Not PYTEST_ADDOPTS: the pytest runs the tests start (the conformance suite on example
    plugins) would inherit it, and pytest empties its basetemp at start, wiping this run's files.
    """
    base = os.environ.get("POLYRL_TEST_BASETEMP")
    if base and not config.option.basetemp:
        config.option.basetemp = base


@pytest.fixture
def fake_backend() -> Iterator[str]:
    """Register the fake backend for one test; yields its name."""
    plugin = FakePlugin()
    polyrl.registry().register(plugin, name="fake-plugin")
    try:
        yield "fake"
    finally:
        polyrl.registry().unregister(plugin)


class Recorder(polyrl.Callback):
    """Records every hook call by name, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_begin(self, context):
        self.calls.append("on_train_begin")

    def on_train_end(self, context, result):
        self.calls.append("on_train_end")

    def on_iteration_begin(self, context, iteration):
        self.calls.append("on_iteration_begin")

    def on_iteration_end(self, context, record):
        self.calls.append("on_iteration_end")

    def on_play_begin(self, context):
        self.calls.append("on_play_begin")

    def on_play_end(self, context, result):
        self.calls.append("on_play_end")

    def on_episode_begin(self, context, index):
        self.calls.append("on_episode_begin")

    def on_episode_end(self, context, episode):
        self.calls.append("on_episode_end")

    def on_step_begin(self, context, observation):
        self.calls.append("on_step_begin")

    def on_step_end(self, context, step):
        self.calls.append("on_step_end")


@pytest.fixture
def recorder() -> Recorder:
    """A fresh hook recorder."""
    return Recorder()


# A Ray head node for the tests that run work on a cluster address (tests/ray_support.py).
from ray_support import ray_head  # noqa: E402,F401 - the fixture, defined there
