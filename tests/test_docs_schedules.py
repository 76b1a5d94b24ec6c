"""The examples of docs/schedules.md run, in order, as a user would paste them, on SB3.

What an example prints is checked against the comment after its print() call (on the same line
or the next ones), each a whole printed line, so the page cannot drift from what polyrl does.
"""

from __future__ import annotations

import re
import shlex

import pytest
from docs_support import DOCS, expected_outputs, python_blocks, run_examples

DOC = DOCS / "schedules.md"


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks(DOC)
    assert len(blocks) >= 2
    assert sum(len(expected_outputs(block)) for block in blocks) >= 6


def test_the_examples_run_and_print_what_the_page_says(tmp_path, monkeypatch) -> None:
    pytest.importorskip("stable_baselines3")
    monkeypatch.chdir(tmp_path)
    run_examples(DOC, whole_lines=True)


def test_the_command_line_examples_parse_into_the_documented_schedules() -> None:
    from polyrl.cli.app import build_documents
    from polyrl.schedules import LinearSchedule

    text = DOC.read_text().replace("\\\n", " ")  # shell line continuations
    commands = re.findall(r"^polyrl train (.+)$", text, flags=re.M)
    assert len(commands) == 2
    first, _ = build_documents(None, None, {}, shlex.split(commands[0]))
    assert first.learning_rate == LinearSchedule(start=3e-4, end=0.0)
    second, _ = build_documents(None, None, {}, shlex.split(commands[1]))
    assert second.dqn is not None
    assert second.dqn.epsilon == LinearSchedule(start=1.0, end=0.05, end_fraction=0.1)
