"""The conformance suite as a polyrl plugin: `polyrl conformance`, `polyrl bench` and the bench's hooks.

Registered through the "polyrl" entry-point group (`conformance = "polyrl_conformance.plugin"`)
like any third-party plugin: polyrl's core never imports this package. Importing this module
imports polyrl's hook markers only; the commands' modules load when the `polyrl` app is built,
and what they run (pytest, the backends) when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyrl.backend import hookimpl

if TYPE_CHECKING:
    import pluggy
    import typer


@hookimpl
def polyrl_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Declare the hooks backend plugins implement for `polyrl bench`."""
    from polyrl_conformance.bench.hookspecs import BenchSpecs

    pluginmanager.add_hookspecs(BenchSpecs)


@hookimpl
def polyrl_register_commands(cli: typer.Typer) -> None:
    """Add `polyrl conformance` and `polyrl bench`."""
    from polyrl_conformance.bench.cli import BENCH_HELP, bench
    from polyrl_conformance.cli import conformance

    cli.command(name="conformance", help="Run the conformance suite against installed backends.")(conformance)
    cli.command(name="bench", help=BENCH_HELP)(bench)
