"""MLflow: a run with params, per-iteration metrics and the final checkpoint; and the integration plugin."""

from __future__ import annotations

import numpy as np
import polyrl
import pytest
from callbacks_support import backend_fixture, make_agent
from polyrl import Agent
from polyrl.callbacks import MLflowLogger
from polyrl.integrations import mlflow as integration

pytest.importorskip("mlflow")

backend = backend_fixture()


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """A local file store (MLflow 3 wants an explicit opt-in for it); returns its URI."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def only_run(uri: str, experiment: str = "polyrl"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found is not None else []
    return client, runs


def test_run_has_params_metrics_and_a_loadable_checkpoint(backend, file_store, tmp_path):
    agent = make_agent(backend)
    logger = MLflowLogger(tracking_uri=file_store, experiment="tests", run_name="tiny")
    result = agent.train(iterations=3, callbacks=[logger])

    client, runs = only_run(file_store, "tests")
    assert [r.info.run_id for r in runs] == [logger.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert run.data.params["spec.backend"] == backend and run.data.params["train.iterations"] == "3"
    assert float(run.data.params["effective.learning_rate"]) == agent.learning_rate
    assert run.data.tags["polyrl.stop_reason"] == "iterations reached"
    history = client.get_metric_history(logger.run_id, "loss")
    assert [m.step for m in history] == [r.env_steps for r in result.records]
    assert [m.value for m in history] == pytest.approx([r.losses["loss"] for r in result.records])

    artifacts = {a.path for a in client.list_artifacts(logger.run_id)}
    assert {"checkpoint", "spec.json"} <= artifacts
    local = client.download_artifacts(logger.run_id, "checkpoint", str(tmp_path / "download"))
    loaded = Agent.load(local)
    observations = np.zeros((2, 4), dtype=np.float32)
    assert loaded.iterations == 3 and np.array_equal(loaded.act(observations), agent.act(observations))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy deprecations inside MLflow
def test_integration_plugin_logs_every_run_once_enabled(fake_backend, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Installed through the "polyrl" entry-point group of polyrl's own pyproject.
    installed = polyrl.registry().manager.is_registered(integration.plugin)
    assert installed or polyrl.registry().manager.get_plugin("mlflow") is None
    if not installed:
        polyrl.registry().register(integration.plugin, name="mlflow-test")
    try:
        monkeypatch.delenv(integration.URI_VARIABLE, raising=False)
        monkeypatch.delenv(integration.ENABLE_VARIABLE, raising=False)
        make_agent("fake").train(iterations=1)  # disabled: nothing is created
        assert not (tmp_path / "mlflow.db").exists()

        monkeypatch.setenv(integration.URI_VARIABLE, uri)
        monkeypatch.setenv(integration.CHECKPOINT_VARIABLE, "0")
        agent = make_agent("fake")
        agent.train(iterations=2)  # no callback passed
        # With an MLflowLogger in the callbacks, the plugin does not log the run a second time.
        agent.train(iterations=1, callbacks=[MLflowLogger(tracking_uri=uri, log_checkpoint=False)])
    finally:
        if not installed:
            polyrl.registry().unregister(integration.plugin)

    client, runs = only_run(uri)
    assert len(runs) == 2
    by_steps = sorted(runs, key=lambda r: len(client.get_metric_history(r.info.run_id, "iteration")))
    assert [len(client.get_metric_history(r.info.run_id, "iteration")) for r in by_steps] == [1, 2]
    assert by_steps[1].data.tags["polyrl.logged_by"] == "polyrl.integrations.mlflow"
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the sqlite database
