"""The examples of docs/presets.md run, in order, as a user would paste them, on SB3.

What an example prints is checked against the comment after its print() call (on the same line
or the next), so the page cannot drift from what polyrl does. Its table of presets names only
presets the book has, and every preset of the book.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from polyrl.presets import preset_book

DOC = Path(__file__).resolve().parent.parent / "docs" / "presets.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def expected_outputs(block: str) -> list[str]:
    """The comments that follow a print() call: what the example says it prints."""
    lines = block.splitlines()
    expected = []
    for index, line in enumerate(lines):
        if not line.lstrip().startswith("print("):
            continue
        same_line = re.search(r"\)\s+# (.+)$", line)
        if same_line:
            expected.append(same_line.group(1).strip())
        elif index + 1 < len(lines) and lines[index + 1].lstrip().startswith("# "):
            expected.append(lines[index + 1].lstrip()[2:].strip())
    return expected


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks()
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
    namespace: dict = {"__name__": "docs_presets"}
    for index, block in enumerate(python_blocks()):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(block, f"{DOC.name}[block {index}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"example {index} of {DOC.name} failed:\n{block}") from exc
        printed = out.getvalue()
        for expected in expected_outputs(block):
            assert expected in printed, f"example {index} should print {expected!r}, printed:\n{printed}"
