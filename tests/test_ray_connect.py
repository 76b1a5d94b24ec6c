"""A Ray address that does not answer gives up with RayConnectionError, never hangs.

The addresses are local and deterministic: port 1 of 127.0.0.1 refuses connections, and a
listening socket of the test accepts connections but never says a word (what a black-holed
host, a dead head node behind a proxy, or the wrong service looks like to Ray's client). No
test starts Ray; the grid and rllib paths fail before any run or Ray process starts.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import polyrl
import pytest
from polyrl.cli.app import app
from polyrl.errors import ConfigurationError, RayConnectionError
from polyrl.ray_connect import (
    CLIENT_PORT,
    DEFAULT_CONNECT_TIMEOUT,
    check_connect_timeout,
    connect_ray,
    resolve_endpoint,
)
from typer.testing import CliRunner

REFUSED = "127.0.0.1:1"  # nothing listens on port 1 (only root could bind it)
#: Far below the 30 s default and far above how long a refused connection takes on any machine.
FAST = 25.0
#: A generous bound for a 2 s timeout: the probe waits 2 s, the rest is slack for slow CI.
SLOW_CI = 20.0
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@pytest.fixture
def silent_address() -> Iterator[str]:
    """host:port of a socket that accepts connections and never answers (not Ray's protocol)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)  # kept open, never written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()
        for connection in held:
            connection.close()


@pytest.fixture
def no_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


# -- the shared helper ------------------------------------------------------------------------------


def test_a_refused_port_fails_at_once_with_a_typed_error(no_ray_address):
    began = time.monotonic()
    with pytest.raises(RayConnectionError) as caught:
        connect_ray(REFUSED)  # the default timeout: refused does not wait for it
    assert time.monotonic() - began < FAST
    message = str(caught.value)
    assert "'127.0.0.1:1'" in message and "refused" in message
    assert "ray status" in message and "6379" in message  # what to check
    assert isinstance(caught.value, polyrl.PolyrlError) and isinstance(caught.value, ConnectionError)


def test_a_port_that_accepts_but_never_answers_gives_up_after_the_timeout(silent_address, no_ray_address):
    began = time.monotonic()
    with pytest.raises(RayConnectionError) as caught:
        connect_ray(silent_address, timeout=2, timeout_setting="--ray-connect-timeout")
    assert time.monotonic() - began < SLOW_CI
    message = str(caught.value)
    assert silent_address in message and "no answer within 2 s" in message
    assert "--ray-connect-timeout (now 2 s)" in message


def test_ray_client_addresses_are_probed_at_their_port(silent_address, no_ray_address):
    with pytest.raises(RayConnectionError, match="Ray Client's"):
        connect_ray(f"ray://{silent_address}", timeout=1)


def test_a_web_server_port_is_named_as_not_ray(no_ray_address):
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(64)
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    with server, pytest.raises(RayConnectionError, match="dashboard"):
        connect_ray(f"127.0.0.1:{server.getsockname()[1]}", timeout=10)


def test_a_failed_probe_never_imports_ray():
    code = textwrap.dedent(
        """
        import sys
        from polyrl.errors import RayConnectionError
        from polyrl.ray_connect import connect_ray
        try:
            connect_ray("127.0.0.1:1", 2)
        except RayConnectionError:
            print("ray" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_endpoints_of_every_address_form(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_endpoint(None) is None and resolve_endpoint("local") is None
    assert resolve_endpoint("anyscale://cluster") is None  # another client module connects
    gcs = resolve_endpoint("10.0.0.5:6379")
    assert (gcs.host, gcs.port, gcs.client) == ("10.0.0.5", 6379, False)
    client = resolve_endpoint("ray://head.example")
    assert (client.host, client.port, client.client) == ("head.example", CLIENT_PORT, True)
    v6 = resolve_endpoint("[::1]:6380")
    assert (v6.host, v6.port) == ("::1", 6380)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:7000")  # as in ray.init: wins for None and auto
    for address in (None, "auto"):
        found = resolve_endpoint(address)
        assert (found.port, found.source) == (7000, "RAY_ADDRESS")
    assert resolve_endpoint("127.0.0.1:7001").port == 7001  # an explicit address wins over it
    for bad in ("127.0.0.1", "host:port", "host:70000"):
        with pytest.raises(ConfigurationError, match="host:port|no port"):
            resolve_endpoint(bad)


def test_the_timeout_must_be_a_positive_number():
    assert check_connect_timeout(2) == 2.0 and DEFAULT_CONNECT_TIMEOUT == 30.0
    for bad in (0, -1, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ConfigurationError, match="--ray-connect-timeout must be a positive"):
            check_connect_timeout(bad, "--ray-connect-timeout")


# -- the grid: Python API and CLI -------------------------------------------------------------------


@needs_ray
def test_a_grid_on_an_unreachable_address_raises_before_any_run(fake_backend, tmp_path, no_ray_address):
    from polyrl.experiments import ExperimentGrid

    grid = ExperimentGrid("unreachable", data_dir=tmp_path).add("seed", [0, 1])
    base = {"backend": "fake", "algorithm": "linear", "iteration_steps": 50}
    began = time.monotonic()
    with pytest.raises(RayConnectionError, match="refused") as caught:
        grid.run(base, polyrl.TrainConfig(total_steps=100), ray_address=REFUSED, show_progress=False)
    assert time.monotonic() - began < FAST
    assert "drop --ray-address" in str(caught.value)
    assert not list(tmp_path.glob("*/*/status.json"))  # no run started


@needs_ray
def test_the_grid_connect_timeout_is_an_argument(fake_backend, tmp_path, silent_address, no_ray_address):
    from polyrl.experiments import ExperimentGrid

    grid = ExperimentGrid("silent", data_dir=tmp_path)
    base = {"backend": "fake", "algorithm": "linear", "iteration_steps": 50}
    with pytest.raises(RayConnectionError, match="no answer within 2 s"):
        grid.run(
            base,
            polyrl.TrainConfig(total_steps=50),
            ray_address=silent_address,
            ray_connect_timeout=2,
            show_progress=False,
        )
    with pytest.raises(ConfigurationError, match="ray_connect_timeout must be a positive"):
        grid.run(base, polyrl.TrainConfig(total_steps=50), ray_address=silent_address, ray_connect_timeout=0)


@needs_ray
def test_polyrl_grid_on_an_unreachable_address_exits_with_the_error(fake_backend, tmp_path, no_ray_address):
    runner = CliRunner()
    flags = ["--backend", "fake", "--algo", "linear", "--iteration_steps", "50", "--steps", "50"]
    done = runner.invoke(
        app,
        ["grid", "unreachable", *flags, "--data-dir", str(tmp_path), "--ray-address", REFUSED, "--json"],
        catch_exceptions=False,
    )
    assert done.exit_code != 0
    assert done.stdout == ""  # --json: no report when the grid could not start
    error = next(line for line in done.stderr.splitlines() if line.startswith("error"))
    assert error.startswith("error (RayConnectionError): cannot connect to the Ray cluster at '127.0.0.1:1'")
    assert "polyrl grid --resume" in error  # the planned grid can run once the cluster is up


@needs_ray
def test_polyrl_grid_takes_a_connect_timeout(fake_backend, tmp_path, silent_address, no_ray_address):
    runner = CliRunner()
    flags = ["--backend", "fake", "--algo", "linear", "--iteration_steps", "50", "--steps", "50"]
    done = runner.invoke(
        app,
        ["grid", "silent", *flags, "--data-dir", str(tmp_path), "--ray-address", silent_address,
         "--ray-connect-timeout", "2"],
        catch_exceptions=False,
    )  # fmt: skip
    assert done.exit_code != 0
    error = next(line for line in done.stderr.splitlines() if line.startswith("error"))
    assert "no answer within 2 s" in error and "--ray-connect-timeout 2" in error


# -- the rllib backend ------------------------------------------------------------------------------

RLLIB_CLIENT = textwrap.dedent(
    """
    import json, socket, sys, polyrl
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    outcomes = []
    for options in ({"address": "127.0.0.1:1"},
                    {"address": f"127.0.0.1:{silent.getsockname()[1]}", "ray_connect_timeout": 2}):
        try:
            polyrl.Agent(backend="rllib", algorithm="ppo", env="CartPole-v1", backend_options=options)
            outcomes.append(["connected", ""])
        except Exception as exc:
            outcomes.append([type(exc).__name__, str(exc)])
    print(json.dumps(outcomes))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_an_rllib_agent_with_an_unreachable_address_raises_the_typed_error(monkeypatch):
    pytest.importorskip("polyrl_rllib")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # A fresh process: this one may already hold a local Ray instance from another test.
    done = subprocess.run([sys.executable, "-c", RLLIB_CLIENT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (refused_type, refused), (silent_type, silent) = json.loads(done.stdout.strip().splitlines()[-1])
    assert refused_type == silent_type == "RayConnectionError"
    assert "refused" in refused and "drop backend_options address" in refused
    assert "no answer within 2 s" in silent and "backend_options ray_connect_timeout" in silent


def test_rllib_validates_ray_connect_timeout():
    pytest.importorskip("polyrl_rllib")
    from polyrl_rllib.params import read_settings

    spec = polyrl.AgentSpec(backend="rllib", algorithm="ppo", backend_options={"ray_connect_timeout": 5})
    assert read_settings(spec).ray_connect_timeout == 5.0
    assert read_settings(polyrl.AgentSpec(backend="rllib", algorithm="ppo")).ray_connect_timeout == 30.0
    bad = polyrl.AgentSpec(backend="rllib", algorithm="ppo", backend_options={"ray_connect_timeout": -1})
    with pytest.raises(polyrl.errors.UnsupportedOptionError, match="ray_connect_timeout must be a positive"):
        read_settings(bad)
