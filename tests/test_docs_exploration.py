"""The examples of docs/exploration.md run, in order, as a user would paste them, on SB3 and Tianshou.

What an example prints is checked against the comment after its print() call, as for
docs/observations.md (the same reader of expected outputs).
"""

from __future__ import annotations

import pytest
from docs_support import DOCS, expected_outputs, python_blocks, run_examples

DOC = DOCS / "exploration.md"


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks(DOC)
    assert len(blocks) >= 4
    assert sum(len(expected_outputs(block, before_colon=True)) for block in blocks) >= 6


def test_the_page_states_measurements_not_placeholders() -> None:
    assert "MEASURED" not in DOC.read_text()


def test_the_examples_run_and_print_what_the_page_says(tmp_path, monkeypatch) -> None:
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("tianshou")
    monkeypatch.chdir(tmp_path)
    run_examples(DOC, before_colon=True)
