"""`polyrl bench`: the learning half of the conformance suite.

Trains every backend x algorithm x environment cell of a slice (`ci`, `default`, `full`) for a
fixed env-step budget with several seeds, each seed in a fresh process, and reports per cell the
final deterministic evaluation return, the env steps and training seconds to the environment's
solve threshold, env steps per second and polyrl's time relative to the native library called
directly. A cell whose final return falls below its `min_return` fails the run.

- `cells`: the one file of cells and thresholds.
- `runner`: one cell x seed in a fresh process, and the loop over a slice.
- `overhead`: the polyrl-vs-direct time ratio (through the `polyrl_direct_training` hook).
- `report`: the results as JSON, Markdown and a PNG of learning curves; the README table.
- `baseline`: each cell next to a baseline results file; fails cells slower to learn than allowed.
- `merge`: results of shards (other seeds, cells or hosts of one machine type) joined into one report.
- `cli`: the `polyrl bench` command.

Importing this package imports no backend library.
"""

from polyrl.bench.cells import ENV_THRESHOLDS, SLICES, BenchCell, select_cells
from polyrl.bench.records import BenchReport, CellResult, RatioResult, SeedResult

__all__ = [
    "ENV_THRESHOLDS",
    "SLICES",
    "BenchCell",
    "BenchReport",
    "CellResult",
    "RatioResult",
    "SeedResult",
    "select_cells",
]
