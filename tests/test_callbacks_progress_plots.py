"""ProgressBar (rich and tqdm, quiet off a terminal) and PlotCallback (PNG, live refresh)."""

from __future__ import annotations

import io

import pytest
from callbacks_support import backend_fixture, make_agent
from polyrl import TrainConfig
from polyrl.callbacks import PlotCallback, ProgressBar, plots

backend = backend_fixture()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_steps_iteration_return_and_eta(backend, monkeypatch):
    from rich.console import Console

    monkeypatch.delenv("CI", raising=False)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    agent = make_agent(backend)
    steps = agent.effective_hyperparameters().iteration_steps
    bar = ProgressBar(enabled=True, console=console)
    agent.train(TrainConfig(iterations=3), callbacks=[bar])
    text = out.getvalue()
    assert bar.active
    assert f"{3 * steps}/{3 * steps}" in text and "iteration 3" in text and "return" in text and "ETA" in text


def test_progress_bar_is_quiet_off_a_terminal_and_in_ci(fake_backend, monkeypatch):
    agent = make_agent("fake")
    monkeypatch.delenv("CI", raising=False)
    plain = io.StringIO()
    quiet = ProgressBar(stream=plain)
    agent.train(iterations=2, callbacks=[quiet])
    assert not quiet.active and plain.getvalue() == ""

    monkeypatch.setenv("CI", "true")
    terminal = FakeTerminal()
    in_ci = ProgressBar(stream=terminal)
    agent.train(iterations=2, callbacks=[in_ci])
    assert not in_ci.active and terminal.getvalue() == ""

    monkeypatch.delenv("CI")
    tqdm_out = io.StringIO()
    agent.train(iterations=2, callbacks=[ProgressBar(style="tqdm", enabled=True, stream=tqdm_out)])
    assert "step" in tqdm_out.getvalue() and "iteration=" in tqdm_out.getvalue()


def test_plot_png_has_the_three_panels(backend, tmp_path):
    pytest.importorskip("matplotlib")
    agent = make_agent(backend)
    plot = PlotCallback(tmp_path / "curves.png")
    agent.train(iterations=3, eval_every=3, eval_episodes=1, eval_max_steps=10, callbacks=[plot])
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    ret, length, loss = plot.figure.axes
    assert len(ret.collections) == 1  # the min-max band
    assert [line.get_label() for line in ret.get_lines()] == ["mean", "evaluation mean"]
    assert len(ret.get_lines()[0].get_xdata()) == 3
    assert length.get_ylabel() == "episode length"
    assert "loss" in [line.get_label() for line in loss.get_lines()]


def test_plot_refreshes_live_in_a_notebook(fake_backend, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    shown = []

    def fake_display(png, handle):
        shown.append(png[:8])
        return "handle"

    monkeypatch.setattr(plots, "notebook_display", fake_display)
    monkeypatch.setattr(plots, "in_notebook", lambda: True)
    agent = make_agent("fake")
    agent.train(iterations=4, callbacks=[PlotCallback(tmp_path / "p.png", every=2)])
    assert shown == [b"\x89PNG\r\n\x1a\n"] * 3  # iterations 2 and 4, then the final figure
    agent.train(iterations=1, callbacks=[PlotCallback(tmp_path / "q.png", live=False)])
    assert len(shown) == 3
