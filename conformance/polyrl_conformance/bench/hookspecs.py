"""The hooks `polyrl bench` calls on backend plugins (both optional).

The conformance plugin adds them to polyrl's plugin manager through `polyrl_addhooks`, so the
registry knows them before it checks plugins for misspelt hookimpls. A backend plugin
implements them with `@polyrl.backend.hookimpl` in a module its entry point registers, importing its
library (and the bench's models) inside the function, never at module import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyrl.hookspecs import hookspec

if TYPE_CHECKING:
    from polyrl.spec import AgentSpec

    from polyrl_conformance.bench.tuning import CellTuning


class BenchSpecs:
    """Hooks through which a backend plugin takes part in `polyrl bench`."""

    @hookspec(firstresult=True)
    def polyrl_direct_training(self, spec: AgentSpec, total_steps: int) -> float | None:
        """Train `spec` for `total_steps` env steps with the native library alone; return the seconds.

        The seconds cover building the native objects from the same mapped configuration polyrl
        uses and the library's own training loop. Return None for a spec of another backend.
        Import the library inside the function, never at module import.
        """
        raise NotImplementedError

    @hookspec
    def polyrl_bench_cells(self) -> list[CellTuning]:
        """Tune the benchmark's cells of this plugin's backends: measured pass lines and spec fields.

        Each `CellTuning` (or a dict of its fields) names one of this plugin's backends and one
        algorithm x env entry of the bench's matrix, with the cell's pass/fail line (`min_return`,
        below the env's solve threshold where the budget does not solve it on every seed), a
        `note` saying which measurement it comes from, and `spec` fields laid over the matrix's
        (e.g. smaller batches for a library that is slow with the common ones). Cells a plugin
        does not tune are judged against the environment's solve threshold.
        """
        raise NotImplementedError
