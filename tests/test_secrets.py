"""Secrets in URIs never reach polyrl's files or output; an unreachable tracking server warns once.

The tracking server is http://user:hunter2@127.0.0.1:1/ (port 1 refuses at once) or a local
socket that accepts and never answers; the runs use the fake backend, in this process or in a
grid's run process (the fake backend installed there like a third-party plugin).
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import polyrl
import pytest
from callbacks_support import make_agent
from polyrl.callbacks import CSVLogger, JSONLinesLogger, MLflowLogger
from polyrl.errors import CallbackError, TrackingUnreachableError, TrackingUnreachableWarning
from polyrl.integrations import mlflow as integration
from polyrl.redact import redact_uri

pytest.importorskip("mlflow")

TESTS = Path(__file__).parent
SECRET = "hunter2"
UNREACHABLE = f"http://user:{SECRET}@127.0.0.1:1/"


@pytest.fixture(autouse=True)
def no_tracking_environment(monkeypatch):
    for name in (integration.URI_VARIABLE, integration.ENABLE_VARIABLE, "POLYRL_MLFLOW_STRICT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An http URI whose server accepts connections (the kernel's backlog) and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    with server:
        yield f"http://user:{SECRET}@127.0.0.1:{server.getsockname()[1]}/"


def tracking_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TrackingUnreachableWarning)]


# -- redaction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:hunter2@host:5000/", "http://user:***@host:5000/"),
        ("API request to https://u:p@ss@h/api failed", "API request to https://u:***@h/api failed"),
        ("postgresql://me:pw@db/mlflow", "postgresql://me:***@db/mlflow"),
        ("http://h/x?a=1&token=abc&b=2", "http://h/x?a=1&token=***&b=2"),
        ("s3://b/k?X-Amz-Signature=f00&x=1", "s3://b/k?X-Amz-Signature=***&x=1"),
        ("http://h/?password=pw&secret=s", "http://h/?password=***&secret=***"),
        ("http://user@host/ and a@b.com", "http://user@host/ and a@b.com"),  # nothing secret
        ("{'uri': 'http://u:pw@h'}", "{'uri': 'http://u:***@h'}"),
    ],
)
def test_redact_uri_hides_passwords_and_secret_query_values(text, expected):
    assert redact_uri(text) == expected


def test_logger_reprs_hide_the_password():
    assert SECRET not in repr(MLflowLogger(tracking_uri=UNREACHABLE))
    assert "user:***@127.0.0.1:1" in repr(MLflowLogger(tracking_uri=UNREACHABLE))


# -- an unreachable server: warn once, train on ----------------------------------------------------


def test_an_unreachable_server_warns_once_and_the_run_trains_on(fake_backend, tmp_path):
    logger = MLflowLogger(tracking_uri=UNREACHABLE)
    files = [CSVLogger(tmp_path / "progress.csv"), JSONLinesLogger(tmp_path / "records.jsonl")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = make_agent("fake").train(iterations=2, callbacks=[logger, *files])
    assert result.iterations == 2 and logger.run_id is None
    (message,) = tracking_warnings(caught)
    assert "refused" in message and "user:***@127.0.0.1:1" in message and SECRET not in message
    assert "POLYRL_MLFLOW_STRICT=1" in message  # how to make it an error
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "progress.csv").is_file()


def test_a_silent_server_is_given_up_on_after_the_probe_timeout(fake_backend, silent_server):
    logger = MLflowLogger(tracking_uri=silent_server, probe_timeout=1)
    began = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_agent("fake").train(iterations=1, callbacks=[logger])
    assert time.monotonic() - began < 30  # MLflow's own retries would take minutes
    (message,) = tracking_warnings(caught)
    assert "no answer within 1 s" in message and SECRET not in message


def test_strict_tracking_stops_before_training_with_a_typed_error(fake_backend):
    agent = make_agent("fake")
    with pytest.raises(CallbackError) as caught:
        agent.train(iterations=2, callbacks=[MLflowLogger(tracking_uri=UNREACHABLE, strict=True)])
    cause = caught.value.__cause__
    assert isinstance(cause, TrackingUnreachableError) and caught.value.hook == "on_train_begin"
    assert agent.iterations == 0  # nothing trained
    for text in (str(caught.value), str(cause)):
        assert SECRET not in text and "user:***@127.0.0.1:1" in text


def test_strict_tracking_from_the_environment(fake_backend, monkeypatch):
    monkeypatch.setenv("POLYRL_MLFLOW_STRICT", "1")
    with pytest.raises(CallbackError) as caught:
        make_agent("fake").train(iterations=1, callbacks=[MLflowLogger(tracking_uri=UNREACHABLE)])
    assert isinstance(caught.value.__cause__, TrackingUnreachableError)
    with warnings.catch_warnings(record=True) as caught_warnings:  # strict=False wins over it
        warnings.simplefilter("always")
        lenient = MLflowLogger(tracking_uri=UNREACHABLE, strict=False)
        make_agent("fake").train(iterations=1, callbacks=[lenient])
    assert len(tracking_warnings(caught_warnings)) == 1


# -- a grid run with the integration on: no file, no output holds the password ----------------------

PLUGIN_SOURCE = '''
"""The fake backend as an installed plugin (for a grid's run processes)."""

import polyrl
from fake_backend import FakePlugin

_PLUGIN = FakePlugin()


@polyrl.backend.hookimpl
def polyrl_backends():
    return _PLUGIN.polyrl_backends()
'''


@pytest.fixture
def grid_environment(fake_backend, tmp_path, monkeypatch) -> Path:
    """Run processes see the fake backend as a plugin and the MLflow integration enabled."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "polyrl_secrets_test_plugin.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist_info = site / "polyrl_secrets_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: polyrl-secrets-test-plugin\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text("[polyrl]\nfake_secrets_test = polyrl_secrets_test_plugin\n")
    path = os.pathsep.join(filter(None, [str(site), str(TESTS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv(integration.URI_VARIABLE, UNREACHABLE)
    monkeypatch.setenv(integration.CHECKPOINT_VARIABLE, "0")
    return tmp_path / "data"


def run_grid(data: Path, name: str):
    from polyrl.cli.app import app
    from typer.testing import CliRunner

    flags = ["--backend", "fake", "--algo", "linear", "--iteration_steps", "50", "--eval-episodes", "1"]
    arguments = ["grid", name, *flags, "--steps", "100", "--json", "--data-dir", str(data)]
    done = CliRunner().invoke(app, arguments, catch_exceptions=False)
    report = json.loads(done.stdout)
    (run,) = report["runs"]
    return done, run, Path(run["directory"])


def files_holding(directory: Path, text: str) -> list[str]:
    return [str(p) for p in directory.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_a_grid_run_with_an_unreachable_tracking_server_keeps_the_password_out(grid_environment):
    if not polyrl.registry().manager.is_registered(integration.plugin):
        pytest.skip("polyrl's MLflow integration entry point is not installed")
    done, run, directory = run_grid(grid_environment, "tracked")
    assert done.exit_code == 0, done.output
    assert run["status"] == "done" and run["env_steps"] == 100
    assert {"progress.csv", "records.jsonl", "status.json"} <= {p.name for p in directory.iterdir()}
    log = (directory / "output.log").read_text()
    assert log.count("TrackingUnreachableWarning") == 1 and "user:***@127.0.0.1:1" in log
    assert files_holding(grid_environment, SECRET) == []
    assert SECRET not in done.stdout and SECRET not in done.stderr


def test_a_strict_grid_run_fails_before_training_without_the_password(grid_environment, monkeypatch):
    if not polyrl.registry().manager.is_registered(integration.plugin):
        pytest.skip("polyrl's MLflow integration entry point is not installed")
    monkeypatch.setenv("POLYRL_MLFLOW_STRICT", "1")
    done, run, _ = run_grid(grid_environment, "strict")
    assert done.exit_code != 0
    assert run["status"] == "failed" and run["env_steps"] == 0
    assert "TrackingUnreachableError" in run["error"] and "user:***@127.0.0.1:1" in run["error"]
    assert files_holding(grid_environment, SECRET) == []
    assert SECRET not in done.stdout and SECRET not in done.stderr
