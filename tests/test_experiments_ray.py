"""A grid on a Ray cluster: a local head node started by the test, runs as Ray tasks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("stable_baselines3")


# Ray >= 2.5x turns on token auth whenever ~/.ray/auth_token exists, which any earlier local
# ray.init may have written; head and client of this test agree on no auth instead.
NO_TOKEN_AUTH = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head node in its own process group, killed with its daemons afterwards.

    Killing the group (instead of `ray stop`) leaves any other Ray instance on the machine alone.
    """
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    port = _free_port()
    temp_dir = Path("/tmp") / f"ray-{os.getpid()}-{port}"
    process = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=NO_TOKEN_AUTH,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the Ray head node did not start within 60 s")
    try:
        yield address
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


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
