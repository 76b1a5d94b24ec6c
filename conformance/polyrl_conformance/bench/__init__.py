"""`polyrl bench`: the learning half of the conformance suite.

Trains every backend x algorithm x environment cell of a slice (`ci`, `default`, `full`,
`images`) for a fixed env-step budget with several seeds, each seed in a fresh process, and
reports per cell the final deterministic evaluation return, the env steps and training seconds
to the environment's solve threshold, env steps per second and polyrl's time relative to the
native library called directly. A cell whose judged return falls below its `min_return` fails the run.

The bench names no backend: the cells are the generic matrix for each installed backend's
declared algorithms, tuned by the backend's own plugin through the hooks in `hookspecs`.

- `matrix`: algorithm x environment entries with their budgets and common spec fields; thresholds.
- `hookspecs`: `polyrl_bench_cells` (a plugin's tuning), `polyrl_direct_training` (the ratio),
  `polyrl_zoo_config` and `polyrl_zoo_training` (RL Zoo3's runs).
- `tuning`: the tuning model and its collection from the plugins.
- `cells`: a backend's cells (matrix entries it fits, with its tuning) and a slice's selection.
- `protocol`: the measuring protocol of one seed (evaluation cadence, clocks, the threshold),
  shared by polyrl's runs and RL Zoo3's.
- `runner`: one cell x seed in a fresh process, and the loop over a slice.
- `overhead`: the polyrl-vs-direct time ratio, wall and CPU (through `polyrl_direct_training`).
- `report`: the results as JSON, Markdown and a PNG of learning curves; a README's table.
- `baseline`: each cell next to a baseline results file; fails cells slower to learn than allowed.
- `zoo`: each cell next to RL Zoo3's configuration trained directly (`--baseline zoo`), with ratios.
- `merge`: results of shards (other seeds, cells or hosts of one machine type) joined into one report.
- `cli`: the `polyrl bench` command (registered by `polyrl_conformance.plugin`).

Importing this package imports no backend library.
"""

from polyrl_conformance.bench.cells import BenchCell, select_cells
from polyrl_conformance.bench.matrix import ENV_THRESHOLDS, MATRIX, SLICES
from polyrl_conformance.bench.records import BenchReport, CellResult, RatioResult, SeedResult
from polyrl_conformance.bench.tuning import CellTuning

__all__ = [
    "ENV_THRESHOLDS",
    "MATRIX",
    "SLICES",
    "BenchCell",
    "BenchReport",
    "CellResult",
    "CellTuning",
    "RatioResult",
    "SeedResult",
    "select_cells",
]
