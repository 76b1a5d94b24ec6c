"""`polyrl tune --ray-address`: the study's workers run as Ray tasks on a local head node (as the
grid's test does), sharing the SQLite study in the tune directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("optuna")
pytest.importorskip("ray")
pytest.importorskip("stable_baselines3")

from ray_support import NO_TOKEN_AUTH  # the ray_head fixture comes from conftest.py


def test_the_workers_of_a_study_run_as_ray_tasks(ray_head, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"learning_rate": {"float": [1e-4, 1e-3], "log": True}}))
    out = tmp_path / "study"
    command = [
        sys.executable, "-m", "polyrl.cli.app", "tune", "onray", "--backend", "sb3", "--algo", "ppo",
        "--env", "CartPole-v1", "--iteration_steps", "64", "--batch_size", "32", "--steps", "128",
        "--eval-every", "64", "--eval-episodes", "1", "--trials", "2", "--fresh-seeds", "0",
        "--space", str(space), "--out", str(out), "--workers", "2", "--ray-address", ray_head, "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**NO_TOKEN_AUTH, "CI": "1"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (study,) = json.loads(done.stdout)["studies"]
    assert study["counts"]["complete"] == 2 and study["counts"]["total"] == 2
    statuses = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("*/status.json"))]
    assert [(s["status"], s["env_steps"]) for s in statuses] == [("done", 128), ("done", 128)]
    assert json.loads((out / "best.json").read_text())["algorithm"] == "ppo"
