"""MLflow: a run per train() call with params, per-iteration metrics and the final checkpoint.

Talks to MLflow through an explicit `MlflowClient`, never the global "active run", so it does
not disturb (or depend on) a user's own mlflow.start_run(). The same class backs the installed
integration `polyrl.integrations.mlflow`, which logs every run without being passed as a callback.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from polyrl.callbacks.base import Callback
from polyrl.errors import ConfigurationError

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult

#: Key in `context.shared` holding the MLflow run id of the run, so two loggers never double-log.
SHARED_RUN_ID = "mlflow_run_id"
_MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value's length
_PARAMS_PER_BATCH = 100  # MLflow's limit on parameters per log_batch call


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested dicts as dotted keys with string values (MLflow params are flat strings)."""
    if isinstance(value, dict) and value:
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return flat
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    key = re.sub(r"[^\w\-. /]", "_", prefix)
    return {key: text[:_MAX_PARAM_VALUE]}


def _local_sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        return Path(path) if path and not path.startswith(":memory:") else None
    return None


class MLflowLogger(Callback):
    """Log each train() call as an MLflow run.

    - params: the spec (`spec.*`), the TrainConfig (`train.*`) and the hyperparameters the
      native library object holds (`effective.*`), once when training starts;
    - metrics: every number of every IterationRecord under its polyrl name, with `step` the
      lifetime env steps (default) or iteration;
    - artifacts: `spec.json`, and at the end `checkpoint/` (the final agent, loadable with
      `Agent.load` after download) unless `log_checkpoint=False`.

    `tracking_uri` None uses MLflow's default (the MLFLOW_TRACKING_URI variable, else a local
    `sqlite:///mlflow.db`); a local sqlite store created here keeps artifacts in `mlartifacts/`
    beside the database. The store is opened when training starts, so a bad URI or an
    unwritable path fails then. A run that raises stays RUNNING in MLflow.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "polyrl",
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        log_checkpoint: bool = True,
        step: Literal["env_steps", "iteration"] = "env_steps",
    ) -> None:
        if step not in ("env_steps", "iteration"):
            raise ConfigurationError(f"MLflowLogger step must be 'env_steps' or 'iteration', got {step!r}")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.log_checkpoint = log_checkpoint
        self.step = step
        self.run_id: str | None = None
        self._client: Any = None

    def on_train_begin(self, context: TrainContext) -> None:
        self._client = None
        if context.shared.get(SHARED_RUN_ID):
            return  # another MLflow logger of this run already logs it
        try:
            import mlflow
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ConfigurationError(
                "MLflowLogger needs mlflow: pip install mlflow (or pip install 'polyrl[mlflow]')"
            ) from exc
        uri = self.tracking_uri or mlflow.get_tracking_uri()
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            database = _local_sqlite_path(uri)
            location = None
            if database is not None:
                location = (database.absolute().parent / "mlartifacts").as_uri()
            experiment_id = client.create_experiment(self.experiment, artifact_location=location)
        agent = context.agent
        spec = agent.spec
        tags = {
            "polyrl.backend": spec.backend,
            "polyrl.algorithm": spec.algorithm,
            "polyrl.env": agent.env_source.name,
            **self.tags,
        }
        run = client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        self._client, self.run_id = client, run.info.run_id
        context.shared[SHARED_RUN_ID] = self.run_id
        params = {
            **flatten("spec", spec.model_dump(mode="json")),
            **flatten("train", context.config.model_dump(mode="json")),
            **flatten("effective", agent.effective_hyperparameters().model_dump(mode="json")),
        }
        items = [Param(key, value) for key, value in sorted(params.items())]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            client.log_batch(self.run_id, params=items[start : start + _PARAMS_PER_BATCH])
        client.log_text(self.run_id, spec.model_dump_json(indent=2), "spec.json")

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        if self._client is None:
            return
        from mlflow.entities import Metric

        step = record.env_steps if self.step == "env_steps" else record.iteration
        stamp = int(time.time() * 1000)
        metrics = [
            Metric(name, float(value), stamp, step)
            for name, value in record.flat().items()
            if value is not None
        ]
        self._client.log_batch(self.run_id, metrics=metrics)

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.set_tag(self.run_id, "polyrl.stop_reason", result.stop_reason)
        if self.log_checkpoint:
            with tempfile.TemporaryDirectory(prefix="polyrl-mlflow-") as staging:
                path = Path(staging) / "checkpoint"
                context.agent.save(path, metadata={"mlflow_run_id": self.run_id})
                client.log_artifacts(self.run_id, str(path), artifact_path="checkpoint")
        client.set_terminated(self.run_id, status="FINISHED")

    def __repr__(self) -> str:
        return f"MLflowLogger(tracking_uri={self.tracking_uri!r}, experiment={self.experiment!r})"
