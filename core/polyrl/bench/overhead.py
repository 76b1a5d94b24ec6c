"""polyrl's wall time relative to the native library called directly, for one cell.

    python -m polyrl.bench.overhead RUN_DIR     # reads ratio_plan.json, writes ratio.json

Both sides build the same configuration (the cell's spec mapped by the backend plugin) and train
`cell.ratio_steps` env steps, in the same process, alternating which goes first, after one
warm-up run of each (imports, caches, a local Ray instance). The direct side comes from the
backend plugin's `polyrl_direct_training` hook (the library's own training loop); the ratio is
median(polyrl seconds) / median(direct seconds). Backends without the hook report "not
available".
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from pathlib import Path

from polyrl.bench.cells import BenchCell
from polyrl.bench.records import RatioResult

WARMUP_STEPS = 1000


def polyrl_seconds(cell: BenchCell, seed: int, steps: int) -> float:
    """Seconds polyrl takes to build the agent and train `steps` env steps."""
    from polyrl.agent import Agent

    began = time.perf_counter()
    agent = Agent(cell.agent_spec(seed))
    agent.train(total_steps=steps)
    seconds = time.perf_counter() - began
    agent.close()
    return seconds


def direct_seconds(cell: BenchCell, seed: int, steps: int) -> float | None:
    """Seconds the native library takes for the same, or None if the backend has no direct hook."""
    from polyrl.plugins import registry

    return registry().manager.hook.polyrl_direct_training(spec=cell.agent_spec(seed), total_steps=steps)


def measure_ratio(cell: BenchCell, repeats: int = 3) -> RatioResult:
    """Alternate direct and polyrl runs of `cell.ratio_steps` steps; median seconds and their ratio."""
    steps = cell.ratio_steps
    try:
        if direct_seconds(cell, 0, min(steps, WARMUP_STEPS)) is None:
            return RatioResult(available=False)
        polyrl_seconds(cell, 0, min(steps, WARMUP_STEPS))
        direct: list[float] = []
        ours: list[float] = []
        for repeat in range(repeats):
            # Alternate the order so a drift in machine load hits both sides alike.
            if repeat % 2 == 0:
                direct.append(direct_seconds(cell, repeat, steps) or 0.0)
                ours.append(polyrl_seconds(cell, repeat, steps))
            else:
                ours.append(polyrl_seconds(cell, repeat, steps))
                direct.append(direct_seconds(cell, repeat, steps) or 0.0)
    except Exception as exc:  # a failing measurement is reported, the benchmark goes on
        return RatioResult(
            available=True, env_steps=steps, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        )
    direct_median, polyrl_median = statistics.median(direct), statistics.median(ours)
    return RatioResult(
        available=True,
        env_steps=steps,
        repeats=repeats,
        polyrl_seconds=ours,
        direct_seconds=direct,
        polyrl_median=polyrl_median,
        direct_median=direct_median,
        ratio=polyrl_median / direct_median if direct_median > 0 else None,
    )


def main(argv: list[str]) -> int:
    """Entry point of the ratio process: measure the cell planned in argv[0]."""
    from polyrl.bench.runner import RATIO_FILE, RATIO_PLAN_FILE
    from polyrl.files import write_text_atomically

    if len(argv) != 1:
        print("usage: python -m polyrl.bench.overhead RUN_DIR", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    plan = json.loads((directory / RATIO_PLAN_FILE).read_text())
    result = measure_ratio(BenchCell.model_validate(plan["cell"]), int(plan["repeats"]))
    write_text_atomically(directory / RATIO_FILE, result.model_dump_json(indent=2))
    if result.error:
        print(result.error, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
