"""A grid on a Ray cluster: a local head node started by the test, runs as Ray tasks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("ray")
pytest.importorskip("stable_baselines3")


from ray_support import NO_TOKEN_AUTH


def test_a_grid_runs_as_ray_tasks_on_a_cluster_address(ray_head, tmp_path):
    command = [
        sys.executable, "-m", "polyrl.cli.app", "grid", "onray", "--algo", "a2c", "--env", "CartPole-v1",
        "--iterations", "2", "--iteration_steps", "32", "--seeds", "0,1", "--eval-episodes", "1",
        "--data-dir", str(tmp_path), "--ray-address", ray_head, "--json",
    ]  # fmt: skip
    environment = {**NO_TOKEN_AUTH, "CI": "true"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/*/status.json"))]
    assert [(s["status"], s["variant"]["seed"], s["env_steps"]) for s in statuses] == [
        ("done", 0, 64),
        ("done", 1, 64),
    ]
    report = json.loads(done.stdout)  # --json: the report alone on stdout, progress on stderr
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 0, "interrupted": 0, "total": 2}
    assert sorted(r["variant"]["seed"] for r in report["runs"]) == [0, 1]
