"""Env steps a spec needs to reach a return threshold, over several seeds: defaults against a tuned spec.

    python benchmarks/steps_to_threshold.py --backend sb3 --spec runs/tune/x/best.json \
        --seeds 100 101 102 --threshold 475 --cap 100000

Trains one iteration at a time and evaluates deterministically (--episodes) every --every env
steps; a seed's count is the env steps at the first evaluation whose mean reaches the threshold
(None: not within --cap). Without --spec the backend's defaults run (backend, algorithm, env,
seed set, nothing else). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import polyrl


def steps_to_threshold(
    spec: dict[str, Any], threshold: float, cap: int, every: int, episodes: int
) -> dict[str, Any]:
    """One seed: the env steps (and training seconds) at which the evaluation first reaches `threshold`."""
    began, evaluated, best = time.perf_counter(), 0, None
    training = 0.0
    with polyrl.Agent(spec) as agent:
        while agent.env_steps < cap:
            started = time.perf_counter()
            agent.train(iterations=1)
            training += time.perf_counter() - started
            if agent.env_steps - evaluated < every and agent.env_steps < cap:
                continue
            evaluated = agent.env_steps
            mean = agent.evaluate(episodes=episodes).return_mean
            best = mean if best is None else max(best, mean)
            if mean >= threshold:
                return {"steps": agent.env_steps, "train_seconds": training, "best": best}
    return {"steps": None, "train_seconds": training, "best": best, "wall": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", required=True)
    parser.add_argument("--algorithm", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument(
        "--spec", type=Path, help="a spec JSON (e.g. a tune's best.json); default: the defaults"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--cap", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args()
    base: dict[str, Any] = {"backend": args.backend, "algorithm": args.algorithm, "env": args.env}
    if args.spec is not None:
        base = json.loads(args.spec.read_text())
        base["backend"] = args.backend
    results = {
        seed: steps_to_threshold({**base, "seed": seed}, args.threshold, args.cap, args.every, args.episodes)
        for seed in args.seeds
    }
    reached = [r["steps"] for r in results.values() if r["steps"] is not None]
    print(
        json.dumps(
            {
                "backend": args.backend,
                "spec": str(args.spec) if args.spec else "defaults",
                "threshold": args.threshold,
                "cap": args.cap,
                "seeds": results,
                "solved": f"{len(reached)}/{len(results)}",
                "median_steps": statistics.median(reached) if reached else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
