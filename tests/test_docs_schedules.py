"""The examples of docs/schedules.md run, in order, as a user would paste them, on SB3.

What an example prints is checked against the comment after its print() call (on the same line
or the next ones), so the page cannot drift from what polyrl does.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "schedules.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def expected_outputs(block: str) -> list[str]:
    """The comments that follow a print() call: on its line, or the comment lines right after it."""
    lines = block.splitlines()
    expected = []
    for index, line in enumerate(lines):
        if not line.lstrip().startswith(("print(", "for ")):
            continue
        same_line = re.search(r"\)\s+# (.+)$", line)
        if same_line:
            expected.append(same_line.group(1).strip())
            continue
        following = index + 1
        while following < len(lines) and not lines[following].lstrip().startswith("# "):
            if not lines[following].startswith(" "):
                break
            following += 1
        while following < len(lines) and lines[following].lstrip().startswith("# "):
            expected.append(lines[following].lstrip()[2:].strip())
            following += 1
    return expected


def test_the_page_has_examples_with_expected_outputs() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2
    assert sum(len(expected_outputs(block)) for block in blocks) >= 6


def test_the_examples_run_and_print_what_the_page_says(tmp_path, monkeypatch) -> None:
    pytest.importorskip("stable_baselines3")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_schedules"}
    for index, block in enumerate(python_blocks()):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(block, f"{DOC.name}[block {index}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"example {index} of {DOC.name} failed:\n{block}") from exc
        printed = out.getvalue().splitlines()
        for expected in expected_outputs(block):
            assert expected in printed, f"example {index} should print {expected!r}, printed:\n{printed}"


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
