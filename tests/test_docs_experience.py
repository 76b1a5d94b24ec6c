"""The examples of docs/experience.md run, in order, as a user would paste them, on SB3 (and
Tianshou: the cooperation example's learner).

What an example prints is checked against the comment after its print() call, and the page's
`polyrl record` command lines run as written (after the examples, which save the checkpoint
they record from), so the page cannot drift from what polyrl does.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
from docs_support import DOCS, expected_outputs, python_blocks, run_examples
from polyrl.cli.app import app
from polyrl.experience import read_experience
from typer.testing import CliRunner

DOC = DOCS / "experience.md"


def command_lines() -> list[list[str]]:
    """The `$ polyrl record ...` lines of the page's bash blocks, as argument lists."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    lines = [
        line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ polyrl record")
    ]
    return [shlex.split(line)[1:] for line in lines]


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks(DOC)
    assert len(blocks) >= 4
    assert any("polyrl.cooperate(" in block for block in blocks)
    assert sum(len(expected_outputs(block)) for block in blocks) >= 10
    assert len(command_lines()) == 2


def test_the_examples_and_commands_run_and_do_what_the_page_says(tmp_path, monkeypatch) -> None:
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("tianshou")
    pytest.importorskip("minari")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari-root"))
    run_examples(DOC)

    minari_line, json_line = command_lines()
    result = CliRunner().invoke(app, minari_line, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    dataset = read_experience(tmp_path / "cartpole-expert-v0")
    assert set(dataset.episode_ids.tolist()) == {0, 1, 2, 3, 4}
    result = CliRunner().invoke(app, json_line, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["episodes"] == 5 and summary["path"] == str(tmp_path / "cartpole-expert.npz")
    # The same checkpoint and seed: the same episodes in both formats.
    assert summary["transitions"] == len(dataset)
    assert read_experience(summary["path"]).actions.tolist() == dataset.actions.tolist()
