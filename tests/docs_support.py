"""Shared helpers of the docs tests: a page's python examples, what they say they print, running them.

A page's examples run in order in one namespace, as a user would paste them. What an example
prints is the comment on its print() call's line, or the comment lines right after the call (after
the indented body, for a `for` loop that prints), so the page cannot drift from what polyrl does.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)


def expected_outputs(block: str, *, before_colon: bool = False) -> list[str]:
    """The comments that follow a print() call or a `for` line: what the example says it prints.

    before_colon keeps only a same-line comment's text before its first ":", for pages that explain
    a printed value after it (`print(space.shape)  # (16,): one-hot cells`).
    """
    lines = block.splitlines()
    expected = []
    for index, line in enumerate(lines):
        if not line.lstrip().startswith(("print(", "for ")):
            continue
        same_line = re.search(r"\)\s+# (.+)$", line)
        if same_line:
            comment = same_line.group(1)
            expected.append((comment.split(":")[0] if before_colon else comment).strip())
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


def run_examples(doc: Path, *, before_colon: bool = False, whole_lines: bool = False) -> None:
    """Run the page's examples in order, each printing what the page says (in its printed text, or
    as one of its printed lines when whole_lines). Runs in the current directory: chdir first."""
    namespace: dict = {"__name__": f"docs_{doc.stem}"}
    for index, block in enumerate(python_blocks(doc)):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(block, f"{doc.name}[block {index}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"example {index} of {doc.name} failed:\n{block}") from exc
        printed = out.getvalue()
        found_in: str | list[str] = printed.splitlines() if whole_lines else printed
        for expected in expected_outputs(block, before_colon=before_colon):
            assert expected in found_in, f"example {index} should print {expected!r}, printed:\n{printed}"
