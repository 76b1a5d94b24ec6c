"""The examples of docs/presets.md run, in order, as a user would paste them, on SB3.

What an example prints is checked against the comment after its print() call (on the same line
or the next), so the page cannot drift from what polyrl does. Its table of presets names only
presets the book has, and every preset of the book.
"""

from __future__ import annotations

import re

import pytest
from docs_support import DOCS, expected_outputs, python_blocks, run_examples
from polyrl.presets import preset_book

DOC = DOCS / "presets.md"


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks(DOC)
    assert len(blocks) >= 5
    assert sum(len(expected_outputs(block)) for block in blocks) >= 10


def test_the_table_names_every_preset_of_the_book_and_no_other() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    cells = [cell for row in rows[1:] for cell in row.split("|")[2:]]  # not the family column
    named = {name for cell in cells for name in re.findall(r"[a-z0-9]+-[a-z0-9-]+", cell)}
    assert named == {p.name for p in preset_book().presets}


def test_the_examples_run_and_print_what_the_page_says(tmp_path, monkeypatch) -> None:
    pytest.importorskip("stable_baselines3")
    monkeypatch.chdir(tmp_path)
    run_examples(DOC)
