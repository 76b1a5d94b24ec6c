"""docs/callbacks.md lists every shipped callback with its constructor signature, as the code has it.

Like datasette's tests/test_docs.py: the list comes from `polyrl.callbacks.__all__`, so a new
callback or a changed argument fails here until the reference section says it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import polyrl.callbacks
import pytest
from polyrl.callbacks import Callback

DOC = Path(__file__).resolve().parent.parent / "docs" / "callbacks.md"
HEADING = "## Reference: constructor signatures"


def shipped() -> list[type[Callback]]:
    """Every Callback subclass polyrl.callbacks exports (the base class aside)."""
    found = [getattr(polyrl.callbacks, name) for name in polyrl.callbacks.__all__]
    return [c for c in found if inspect.isclass(c) and issubclass(c, Callback) and c is not Callback]


def signature_line(cls: type) -> str:
    """`Name(arg=default, ...)`: names and defaults, the part a user types (annotations aside)."""
    parts, keyword_only = [], False
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and not keyword_only:
            parts.append("*")
            keyword_only = True
        text = parameter.name
        if parameter.default is not parameter.empty:
            text += f"={parameter.default!r}"
        parts.append(text)
    return f"{cls.__name__}({', '.join(parts)})"


def reference() -> str:
    text = DOC.read_text()
    match = re.search(rf"^{re.escape(HEADING)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"{DOC.name} has no section {HEADING!r}"
    return match.group(1)


@pytest.mark.parametrize("cls", shipped(), ids=lambda cls: cls.__name__)
def test_callback_signature_is_documented(cls: type) -> None:
    line = signature_line(cls)
    assert line in reference().splitlines(), f"{DOC.name} {HEADING!r} lacks the line:\n{line}"


def test_reference_lists_nothing_that_is_not_shipped() -> None:
    names = {cls.__name__ for cls in shipped()}
    listed = set(re.findall(r"^(\w+)\(", reference(), flags=re.M))
    assert listed <= names, f"documented but not shipped: {sorted(listed - names)}"
