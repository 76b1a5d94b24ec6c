"""The examples of docs/exploration.md run, in order, as a user would paste them, on SB3 and Tianshou.

What an example prints is checked against the comment after its print() call, as for
docs/observations.md (the same reader of expected outputs).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from test_docs_observations import expected_outputs

DOC = Path(__file__).resolve().parent.parent / "docs" / "exploration.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 4
    assert sum(len(expected_outputs(block)) for block in blocks) >= 6


def test_the_page_states_measurements_not_placeholders() -> None:
    assert "MEASURED" not in DOC.read_text()


def test_the_examples_run_and_print_what_the_page_says(tmp_path, monkeypatch) -> None:
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("tianshou")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_exploration"}
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
