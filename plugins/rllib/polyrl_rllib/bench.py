"""How the rllib backend takes part in `polyrl bench`: its measured pass/fail lines and spec fields.

Registered from the plugin's `__init__`; this module imports polyrl only (the bench's model is
imported inside the hook, when `polyrl bench` builds its cells).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polyrl.backend import hookimpl

if TYPE_CHECKING:
    from polyrl_conformance.bench.tuning import CellTuning

BACKEND = "rllib"
MEASURED = "measured 2026-11-25, seed 0"
PRESETS_MEASURED = "measured 2026-12-01, seeds 0-2"
MINATAR_MEASURED = "measured 2026-12-01, seeds 0 and 1"
RANDOM = "a random policy scores 0.4"
NO_ENERGY = (
    "the no-energy optimum: a random policy gets about -33; reaching the flag needs temporally "
    "correlated exploration (gSDE, Ornstein-Uhlenbeck noise) that polyrl's common settings lack"
)

#: (algorithm, env) -> (pass/fail line, the measurement it comes from). Each line lies below the
#: worst judged return measured (final, or best for the matrix's "best" cells), so that it catches
#: a backend that stops learning, not seed noise.
LINES: dict[tuple[str, str], tuple[float, str]] = {
    ("ppo", "CartPole-v1"): (
        450.0,
        f"its preset (ppo-cartpole); {PRESETS_MEASURED}: the threshold reached at "
        "8,192, 2,048, 10,240 env steps (stopped there; final evals 500.0, 500.0, 500.0)",
    ),
    ("dqn", "CartPole-v1"): (
        400.0,
        f"its preset (dqn-cartpole); {PRESETS_MEASURED}: the threshold reached at "
        "22,528, 32,768, 34,816 env steps (stopped there; final evals 499.0, 500.0, 500.0)",
    ),
    ("ppo", "Pendulum-v1"): (
        -400.0,
        f"its preset (ppo-pendulum); {PRESETS_MEASURED}: the threshold reached at "
        "36,864, 28,672, 36,864 env steps (stopped there; final evals -189.9, -187.3, -171.2)",
    ),
    ("sac", "Pendulum-v1"): (
        -250.0,
        f"its preset (sac-pendulum); {PRESETS_MEASURED}: the threshold reached at "
        "3,000, 3,000, 2,000 env steps (stopped there; final evals -113.4, -138.1, -177.3)",
    ),
    ("ppo", "Acrobot-v1"): (-120.0, f"{MEASURED}: final -79.8; -100 reached at 20k steps"),
    ("dqn", "Acrobot-v1"): (-100.0, f"{MEASURED}: best -77.9 (final -88.4); -100 reached at 36k steps"),
    ("dqn", "MountainCar-v0"): (-140.0, f"{MEASURED}: best -98.2 (final -127.6); -110 reached at 91k steps"),
    ("sac", "MountainCarContinuous-v0"): (
        -5.0,
        f"{MEASURED}: final -0.0 (a quarter of the updates: batch size 128, 8 gradient steps), {NO_ENERGY}",
    ),
    ("ppo", "MinAtar/Breakout-v1"): (
        3.0,
        f"{MINATAR_MEASURED}: final 5.8 and 5.5 (best 6.0, 5.5); 5 reached at 90k and 76k steps; {RANDOM}",
    ),
    ("dqn", "MinAtar/Breakout-v1"): (
        3.0,
        f"{MINATAR_MEASURED}: final 7.0 and 6.9 (best 7.8, 7.4); 5 reached at 35k and 50k steps "
        f"(89-108 env steps/s: 15-19 min of training); {RANDOM}",
    ),
}

#: Spec fields laid over the matrix's. RLlib's SAC ran the MountainCarContinuous-v0 cell's settings
#: (512-sample batches, one update per env step) at 10 env steps/s here: 50k steps would take
#: 80 min. A quarter of the updates on quarter-size batches reaches the same no-energy optimum
#: (see LINES) in about 10 min.
SPEC: dict[tuple[str, str], dict[str, Any]] = {
    ("sac", "MountainCarContinuous-v0"): {"batch_size": 128, "sac": {"gradient_steps": 8}},
}


@hookimpl
def polyrl_bench_cells() -> list[CellTuning]:
    """The rllib backend's tuning of the bench's cells."""
    from polyrl_conformance.bench.tuning import CellTuning

    return CellTuning.from_lines(BACKEND, LINES, SPEC)
