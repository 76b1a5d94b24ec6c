"""polyrl's time relative to the native library called directly, for one cell.

    python -m polyrl_conformance.bench.overhead RUN_DIR     # reads ratio_plan.json, writes ratio.json

Both sides build the same configuration (the spec the cell's agent trains, its preset applied,
mapped by the backend plugin) and train `cell.ratio_steps` env steps, in the same process,
alternating which goes first, after one warm-up run of each (imports, caches, a library's
runtime; polyrl's warm-up also gives the spec with the preset's fields). The direct side comes from the
backend plugin's `polyrl_direct_training` hook (the library's own training loop); the ratio is
median(polyrl seconds) / median(direct seconds). Backends without the hook report "not
available".

Each run's CPU time (this process's, `time.process_time`) is measured too, around the whole run
on both sides: on a machine shared with other jobs, wall time swings with their load while CPU
time does not, so the CPU ratio is the steadier of the two. Work in other processes (a
library's remote workers) is not in it.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from polyrl_conformance.bench.cells import BenchCell
from polyrl_conformance.bench.records import RatioResult

if TYPE_CHECKING:
    from polyrl.spec import AgentSpec

WARMUP_STEPS = 1000


#: The ratio process reads its plan from, and writes its result to, these files of its run directory.
RATIO_PLAN_FILE = "ratio_plan.json"
RATIO_FILE = "ratio.json"


def polyrl_seconds(cell: BenchCell, seed: int, steps: int) -> float:
    """Seconds polyrl takes to build the agent and train `steps` env steps."""
    return _polyrl_run(cell.agent_spec(seed), steps)[0]


def _polyrl_run(spec: AgentSpec, steps: int) -> tuple[float, AgentSpec]:
    """Seconds polyrl takes for `spec`, and the spec the agent really trained (its preset applied)."""
    from polyrl.agent import Agent

    began = time.perf_counter()
    agent = Agent(spec)
    agent.train(total_steps=steps)
    seconds = time.perf_counter() - began
    trained = agent.spec
    agent.close()
    return seconds, trained


def trained_spec(cell: BenchCell, seed: int, steps: int) -> AgentSpec:
    """The spec an agent of the cell trains: the cell's with the fields its preset fills.

    The direct side must build that configuration, not the cell's bare spec (the library's
    defaults): one short polyrl run (the warm-up) gives it.
    """
    return _polyrl_run(cell.agent_spec(seed), steps)[1]


def direct_seconds(cell: BenchCell, seed: int, steps: int, spec: AgentSpec | None = None) -> float | None:
    """Seconds the native library takes for `spec` (default: the cell's), or None without a direct hook."""
    from polyrl.plugins import registry

    hook = getattr(registry().manager.hook, "polyrl_direct_training", None)
    if hook is None:  # no plugin declared the bench's hooks: no backend can answer
        return None
    chosen = cell.agent_spec(seed) if spec is None else spec.model_copy(update={"seed": seed})
    return hook(spec=chosen, total_steps=steps)


def timed(run: Callable[[], float | None]) -> tuple[float | None, float]:
    """`run`'s own seconds and this process's CPU seconds over the whole call."""
    began = time.process_time()
    seconds = run()
    return seconds, time.process_time() - began


def _ratio(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs > 0 else None


def measure_ratio(cell: BenchCell, repeats: int = 3) -> RatioResult:
    """Alternate direct and polyrl runs of `cell.ratio_steps` steps; median seconds and their ratios."""
    steps = cell.ratio_steps
    direct: list[float] = []
    ours: list[float] = []
    direct_cpu: list[float] = []
    our_cpu: list[float] = []
    try:
        # polyrl's warm-up first: it gives the spec with the preset applied, which both sides train.
        spec = trained_spec(cell, 0, min(steps, WARMUP_STEPS))
        if direct_seconds(cell, 0, min(steps, WARMUP_STEPS), spec) is None:
            return RatioResult(available=False)
        for repeat in range(repeats):
            # Alternate the order so a drift in machine load hits both sides alike.
            for side in ("direct", "polyrl") if repeat % 2 == 0 else ("polyrl", "direct"):
                if side == "direct":
                    seconds, cpu = timed(functools.partial(direct_seconds, cell, repeat, steps, spec))
                    direct.append(seconds or 0.0)
                    direct_cpu.append(cpu)
                else:
                    seconds, cpu = timed(functools.partial(polyrl_seconds, cell, repeat, steps))
                    ours.append(seconds or 0.0)
                    our_cpu.append(cpu)
    except Exception as exc:  # a failing measurement is reported, the benchmark goes on
        return RatioResult(
            available=True, env_steps=steps, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        )
    medians = [statistics.median(values) for values in (ours, direct, our_cpu, direct_cpu)]
    return RatioResult(
        available=True,
        env_steps=steps,
        repeats=repeats,
        polyrl_seconds=ours,
        direct_seconds=direct,
        polyrl_median=medians[0],
        direct_median=medians[1],
        ratio=_ratio(medians[0], medians[1]),
        polyrl_cpu_seconds=our_cpu,
        direct_cpu_seconds=direct_cpu,
        polyrl_cpu_median=medians[2],
        direct_cpu_median=medians[3],
        cpu_ratio=_ratio(medians[2], medians[3]),
    )


def main(argv: list[str]) -> int:
    """Entry point of the ratio process: measure the cell planned in argv[0]."""
    from polyrl.files import write_text_atomically

    if len(argv) != 1:
        print("usage: python -m polyrl_conformance.bench.overhead RUN_DIR", file=sys.stderr)
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
