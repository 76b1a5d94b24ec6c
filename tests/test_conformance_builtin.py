"""CI runs the whole conformance suite on every installed built-in backend, through `polyrl conformance`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polyrl
from polyrl.plugins import is_installed

BUILT_IN = ("sb3", "tianshou", "rllib")


def test_every_installed_builtin_backend_passes_every_check(tmp_path: Path) -> None:
    backends = [name for name in BUILT_IN if is_installed(polyrl.registry().backend(name))]
    assert backends, "no built-in backend is installed; CI installs polyrl[all]"
    command = [sys.executable, "-m", "polyrl.cli.app", "conformance", "--report-dir", str(tmp_path)]
    for name in backends:
        command += ["--backend", name]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=1200, env={**os.environ, "CI": "true"}
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "conformance.json").read_text())
    outcomes = {(r["backend"], r["outcome"]) for r in report["results"]}
    assert {backend for backend, _ in outcomes} == set(backends)
    assert {outcome for _, outcome in outcomes} <= {"pass", "unsupported"}
    assert (tmp_path / "conformance.md").read_text().count("|") > 10
