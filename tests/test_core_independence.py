"""polyrl's core sits below the conformance suite: no module of core/ imports polyrl_conformance.

The suite (and `polyrl bench`, `polyrl conformance`) reaches the core only as a plugin through
the "polyrl" entry-point group, so the check reads the source: every import statement, every
`__import__(...)` (none at all: a hidden import is how the bench used to be loaded) and every
`importlib.import_module(...)` naming the suite.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "core" / "polyrl"
SUITE = "polyrl_conformance"
SOURCES = sorted(CORE.rglob("*.py"))


def _names_suite(name: str | None) -> bool:
    return name is not None and (name == SUITE or name.startswith(SUITE + "."))


def _string_arguments(call: ast.Call) -> list[str]:
    values = [*call.args, *(keyword.value for keyword in call.keywords)]
    return [
        value.value for value in values if isinstance(value, ast.Constant) and isinstance(value.value, str)
    ]


def offences(source: str) -> list[str]:
    """Each place in `source` that imports the suite, or calls `__import__` at all."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if _names_suite(a.name)]
        elif isinstance(node, ast.ImportFrom) and _names_suite(node.module):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)
            if name == "__import__":
                found.append(f"line {node.lineno}: __import__(...)")
            elif name == "import_module" and any(_names_suite(s) for s in _string_arguments(node)):
                found.append(f"line {node.lineno}: import_module({SUITE!r}...)")
    return found


def test_the_check_finds_every_kind_of_import() -> None:
    source = (
        "import polyrl_conformance.bench\n"
        "from polyrl_conformance import plugin\n"
        "__import__('polyrl.anything')\n"
        "importlib.import_module('polyrl_conformance.cli')\n"
        "import polyrl_conformance_other, importlib\n"  # another name, not the suite
        "importlib.import_module(name)\n"  # not a literal: nothing to say
    )
    assert [line.split(":")[0] for line in offences(source)] == ["line 1", "line 2", "line 3", "line 4"]


def test_core_sources_are_found() -> None:
    assert CORE / "cli" / "app.py" in SOURCES and CORE / "plugins.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_does_not_import_the_conformance_suite(path: Path) -> None:
    assert offences(path.read_text(encoding="utf-8")) == []
