"""The CI slice of `polyrl bench`: every installed backend must still learn CartPole-v1.

Runs the real command, `polyrl bench --slice ci --backend NAME` (PPO with polyrl's defaults,
seed 0, each run in its own process, stopped once a deterministic 10-episode evaluation reaches
475), and fails when a backend stops learning or needs more than twice the env steps of the
newest committed CI results (benchmarks/results/*-ci.json). Measured on 2 cores: about 25-45 s per backend
(benchmarks/results/latest.md has the numbers of the last full run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polyrl
import pytest
from polyrl_conformance.bench.cells import select_cells

BUILTIN = ("sb3", "tianshou", "rllib")
#: Seconds of training a backend may take before its seed is stopped (and the cell fails).
TIMEOUT = 300
#: The newest committed CI-slice results: a backend needing more than MAX_SLOWDOWN times their env
#: steps to reach 475 fails (env steps, not seconds: they do not depend on the machine's load).
BASELINE = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "results").glob("*-ci.json"))[-1]
MAX_SLOWDOWN = 2.0


def installed(name: str) -> bool:
    return polyrl.plugins.is_installed(polyrl.registry().backend(name))


@pytest.mark.parametrize("backend", BUILTIN)
def test_ci_slice_learns_cartpole(backend, tmp_path):
    if not installed(backend):
        pytest.skip(f"{backend} is not installed")
    [cell] = select_cells("ci", [backend])
    command = [
        *(sys.executable, "-m", "polyrl.cli.app", "bench", "--slice", "ci", "--backend", backend),
        *("--no-ratio", "--no-latest", "--timeout", str(TIMEOUT)),
        *("--baseline", str(BASELINE), "--max-slowdown", str(MAX_SLOWDOWN)),
        *("--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs")),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT + 300)
    assert done.returncode == 0, f"polyrl bench failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    [results] = list((tmp_path / "out").glob("*-ci.json"))
    report = json.loads(results.read_text())
    [result] = report["cells"]
    [seed] = result["seeds"]
    assert result["passed"] and report["passed"] and report["failures"] == []
    assert seed["solved"] and seed["final_return_mean"] >= cell.solve_threshold
    assert seed["steps_to_threshold"] == seed["env_steps"] <= cell.budget_steps
    assert 0 < seed["seconds_to_threshold"] <= seed["train_seconds"] + 1e-6
    assert seed["stop_reason"] == "solve threshold 475 reached"
    [row] = report["baseline"]["rows"]
    assert row["cell"] == cell.key and row["baseline_steps_to_threshold"] > 0
    assert row["steps_to_threshold"] <= MAX_SLOWDOWN * row["baseline_steps_to_threshold"]
