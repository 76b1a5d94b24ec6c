"""pytest entry point of the conformance suite (registered under pytest11)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("polyrl", "polyrl conformance")
    group.addoption(
        "--polyrl-backend",
        action="append",
        default=[],
        help="backend(s) to check (repeatable); default: every installed backend",
    )
