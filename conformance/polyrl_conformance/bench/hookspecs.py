"""The hooks `polyrl bench` calls on backend plugins (all optional).

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

    from polyrl_conformance.bench.cells import BenchCell
    from polyrl_conformance.bench.protocol import SeedProtocol, Trained
    from polyrl_conformance.bench.records import ZooConfig
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

    @hookspec(firstresult=True)
    def polyrl_zoo_config(self, cell: BenchCell) -> ZooConfig | None:
        """RL Zoo3's configuration of `cell`'s algorithm x env that this plugin runs beside the cell.

        For `polyrl bench --baseline zoo`, called in the bench's own process before anything
        trains (import no ML library). Return None for a cell of a backend the plugin does not run
        RL Zoo3 for; a ZooConfig with `missing` set when RL Zoo3 has no entry for the algorithm x
        env. Raise ExtraNotInstalledError when the rl-zoo3 package is missing and
        ConfigurationError naming any setting of the entry the plugin cannot run.
        """
        raise NotImplementedError

    @hookspec(firstresult=True)
    def polyrl_zoo_training(self, cell: BenchCell, seed: int, protocol: SeedProtocol) -> Trained | None:
        """Train RL Zoo3's configuration of `cell` for one seed with the library directly.

        Runs in a fresh worker process. Report every training iteration to `protocol.iteration`
        (with a function playing the cell's deterministic evaluation episodes in a fresh env, reset
        with seeds seed + EVAL_SEED_OFFSET + i), stop once `protocol.stop_reason` is set or the
        cell's budget is reached, and return what was trained. None for another backend's cell.
        """
        raise NotImplementedError
