"""The conformance suite on every installed built-in backend, through `polyrl conformance`.

The default run checks two algorithms per backend — PPO (on-policy) and DQN (off-policy, with a
replay buffer) — which exercise every check in about 3 minutes; the whole matrix (every
algorithm, continuous actions included: about 7.5 minutes on 2 cores) is a slow test,
`pytest -m slow`, to keep the default run under 15 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polyrl
import pytest
from polyrl.plugins import is_installed

BUILT_IN = ("sb3", "tianshou", "rllib")


#: The algorithms of the default run: one on-policy and one off-policy algorithm on each backend.
DEFAULT_ALGORITHMS = ("ppo", "dqn")


@pytest.mark.parametrize(
    "algorithms",
    [DEFAULT_ALGORITHMS, pytest.param(None, marks=pytest.mark.slow, id="every-algorithm")],
    ids=["ppo-dqn", "every-algorithm"],
)
def test_every_installed_builtin_backend_passes_every_check(
    tmp_path: Path, algorithms: tuple[str, ...] | None
) -> None:
    backends = [name for name in BUILT_IN if is_installed(polyrl.registry().backend(name))]
    assert backends, "no built-in backend is installed; CI installs polyrl[all]"
    command = [sys.executable, "-m", "polyrl.cli.app", "conformance", "--report-dir", str(tmp_path)]
    for name in backends:
        command += ["--backend", name]
    for name in algorithms or ():
        command += ["--algorithm", name]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=2400, env={**os.environ, "CI": "true"}
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "conformance.json").read_text())
    outcomes = {(r["backend"], r["outcome"]) for r in report["results"]}
    assert {backend for backend, _ in outcomes} == set(backends)
    if algorithms:
        assert {(r["backend"], r["algorithm"]) for r in report["results"]} == {
            (b, a) for b in backends for a in algorithms
        }
    assert {outcome for _, outcome in outcomes} <= {"pass", "unsupported"}
    assert (tmp_path / "conformance.md").read_text().count("|") > 10
