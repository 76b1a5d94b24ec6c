"""The examples of docs/callbacks.md run, in order, as a user would paste them.

The fast test runs them on the fake backend (the examples are backend-agnostic: only the setup
block names a backend); the slow one runs them as written, on Stable-Baselines3.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "callbacks.md"
SB3_SETUP = ('backend="sb3", algorithm="ppo"', 'iteration_steps=256, batch_size=64, ppo={"n_epochs": 2},')
FAKE_SETUP = ('backend="fake", algorithm="linear"', "iteration_steps=256,")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def run_examples(blocks: list[str]) -> None:
    namespace: dict = {"__name__": "docs_callbacks"}
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"{DOC.name}[block {index}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"example {index} of {DOC.name} failed:\n{block}") from exc


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")  # the progress bar stays quiet
    return tmp_path


def test_every_callback_has_an_example():
    text = "\n".join(python_blocks())
    shipped = {
        "ModelCheckpoint",
        "EarlyStopping",
        "LearningRateScheduler",
        "ReduceLROnPlateau",
        "Evaluation",
        "CSVLogger",
        "JSONLinesLogger",
        "RunConfigLogger",
        "TensorBoard",
        "MLflowLogger",
        "ProgressBar",
        "PlotCallback",
        "MovieRecorder",
        "APICallLogger",
    }
    assert {name for name in shipped if f"{name}(" in text or f"import {name}" in text} == shipped
    setup = python_blocks()[0]
    assert all(part in setup for part in SB3_SETUP)
    assert all(SB3_SETUP[0] not in block for block in python_blocks()[1:])


def test_examples_run_on_the_fake_backend(fake_backend, workdir, monkeypatch):
    blocks = python_blocks()
    for sb3, fake in zip(SB3_SETUP, FAKE_SETUP, strict=True):
        blocks[0] = blocks[0].replace(sb3, fake)
    # Creating an MLflow sqlite store takes seconds (schema migrations); the slow test keeps it.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    blocks = [block.replace("sqlite:///runs/mlflow.db", "file:./runs/mlruns") for block in blocks]
    run_examples(blocks)
    assert (workdir / "runs" / "ckpt" / "best" / "polyrl.json").is_file()
    assert (workdir / "runs" / "b" / "run.json").is_file()
    assert (workdir / "runs" / "movies" / "play-000-episode-0.mp4").is_file()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_examples_run_as_written_on_sb3(workdir):
    pytest.importorskip("stable_baselines3")
    run_examples(python_blocks())
    assert (workdir / "runs" / "curves.png").is_file()
