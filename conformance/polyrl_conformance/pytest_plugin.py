"""pytest entry point of the conformance suite (registered under pytest11).

pytest loads this module in every run of every project where polyrl is installed, so it only
adds the suite's options: it imports nothing heavy and does nothing else. The checks, their
parametrization and the report live in `polyrl_conformance.checks` (and its conftest), which
exist only when the suite is collected: `pytest --pyargs polyrl_conformance`.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """The suite's command-line options."""
    group = parser.getgroup("polyrl", "polyrl conformance suite (pytest --pyargs polyrl_conformance)")
    group.addoption(
        "--polyrl-backend",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="backend(s) to check (repeatable or comma-separated); default: every installed backend",
    )
    group.addoption(
        "--polyrl-algorithm",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="only these algorithms (repeatable or comma-separated); default: every one advertised",
    )
    group.addoption(
        "--polyrl-env",
        action="append",
        default=[],
        metavar="KEY[,KEY]",
        help="only these suite environments, e.g. CartPole-v1 or custom-boxobs-discrete; default: all",
    )
    group.addoption(
        "--polyrl-threads",
        type=int,
        default=1,
        metavar="N",
        help="CPU threads of the libraries' math kernels (OMP/MKL, torch) during the suite; "
        "0 leaves their defaults (default: 1, as fast for the suite's tiny networks and immune "
        "to oversubscription on shared CI runners)",
    )
    group.addoption(
        "--polyrl-report",
        default=None,
        metavar="DIR",
        help="write the result matrix to DIR/conformance.json and DIR/conformance.md",
    )
    group.addoption(
        "--polyrl-no-matrix",
        action="store_true",
        default=False,
        help="do not print the result matrix at the end (the `polyrl conformance` command prints it)",
    )
