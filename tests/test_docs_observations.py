"""The examples of docs/observations.md run, in order, as a user would paste them, on SB3.

What an example prints is checked against the comment after its print() call (on the same line,
up to a ":" that explains the value, or the next), so the page cannot drift from what polyrl does.
"""

from __future__ import annotations

import pytest
from docs_support import DOCS, expected_outputs, python_blocks, run_examples

DOC = DOCS / "observations.md"


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks(DOC)
    assert len(blocks) >= 6
    assert sum(len(expected_outputs(block, before_colon=True)) for block in blocks) >= 6


def test_the_examples_run_and_print_what_the_page_says(tmp_path, monkeypatch) -> None:
    pytest.importorskip("stable_baselines3")
    monkeypatch.chdir(tmp_path)
    run_examples(DOC, before_colon=True)
