"""MLflow: a run per train() call with params, per-iteration metrics and the final checkpoint.

Talks to MLflow through an explicit `MlflowClient`, never the global "active run", so it does
not disturb (or depend on) a user's own mlflow.start_run(). The same class backs the installed
integration `polyrl.integrations.mlflow`, which logs every run without being passed as a callback.

An http(s) tracking server is probed before the run starts, because MLflow's own client retries
an unreachable server with backoff for minutes per request: if it does not answer within
`probe_timeout` seconds the run goes on without MLflow (one TrackingUnreachableWarning) or, with
strict tracking (`strict=True` or POLYRL_MLFLOW_STRICT=1), stops before training with
TrackingUnreachableError. Tracking URIs are redacted (polyrl.redact) wherever polyrl shows them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from polyrl.callbacks.base import Callback
from polyrl.errors import ConfigurationError, TrackingUnreachableError, TrackingUnreachableWarning
from polyrl.redact import redact_uri

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult

#: Key in `context.shared` holding the MLflow run id of the run, so two loggers never double-log.
SHARED_RUN_ID = "mlflow_run_id"
_MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value's length
_PARAMS_PER_BATCH = 100  # MLflow's limit on parameters per log_batch call
#: Environment variable that makes an unreachable tracking server an error instead of a warning.
STRICT_VARIABLE = "POLYRL_MLFLOW_STRICT"
#: Seconds the reachability probe waits for a tracking server to answer (connect, then read).
PROBE_TIMEOUT = 5.0
_FALSE = {"", "0", "false", "no", "off"}
#: Statuses a gateway or proxy answers for a server behind it that is down.
_GATEWAY_DOWN = {502, 503, 504}


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested dicts as dotted keys with string values (MLflow params are flat strings)."""
    if isinstance(value, dict) and value:
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return flat
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    key = re.sub(r"[^\w\-. /]", "_", prefix)
    return {key: redact_uri(text)[:_MAX_PARAM_VALUE]}


def strict_from_environment() -> bool:
    """Whether POLYRL_MLFLOW_STRICT asks for strict tracking (any value but "", 0, false, no, off)."""
    return os.environ.get(STRICT_VARIABLE, "").strip().lower() not in _FALSE


def unreachable_reason(uri: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the http(s) tracking server at `uri` does not answer within `timeout` s; None if it does.

    Any HTTP answer counts (401 and 404 too: the server is there), except a gateway's 502/503/504.
    The probe sends no credentials and does not check certificates: it only asks whether something
    answers (MLflow's own requests then authenticate and verify as configured). Other schemes
    (sqlite, file, databricks) are not probed.
    """
    scheme, separator, rest = uri.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        return None
    import requests  # MLflow's own HTTP client library, so installed with mlflow
    from urllib3.exceptions import InsecureRequestWarning

    authority, slash, path = rest.partition("/")
    bare = f"{scheme}://{authority.rsplit('@', 1)[-1]}{slash}{path}"  # no user:password@
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            with requests.get(
                bare, timeout=timeout, allow_redirects=False, stream=True, verify=False
            ) as answer:
                status = answer.status_code
    except requests.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.RequestException as exc:
        text = str(exc).lower()
        if "refused" in text:
            return "the connection was refused (nothing listens on that port)"
        if "resolve" in text or "name or service not known" in text or "nodename nor servname" in text:
            return "its host name does not resolve"
        return f"cannot connect ({type(exc).__name__})"
    if status in _GATEWAY_DOWN:
        return f"a gateway in front of it answered HTTP {status} (the server behind it is down)"
    return None


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

    An http(s) server that does not answer within `probe_timeout` seconds when training starts
    is skipped with one TrackingUnreachableWarning (the run trains on and writes its local
    files); with `strict` (default: the POLYRL_MLFLOW_STRICT variable) it raises
    TrackingUnreachableError before the first iteration instead.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "polyrl",
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        log_checkpoint: bool = True,
        step: Literal["env_steps", "iteration"] = "env_steps",
        strict: bool | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        if step not in ("env_steps", "iteration"):
            raise ConfigurationError(f"MLflowLogger step must be 'env_steps' or 'iteration', got {step!r}")
        if (
            isinstance(probe_timeout, bool)
            or not isinstance(probe_timeout, int | float)
            or probe_timeout <= 0
        ):
            raise ConfigurationError(
                f"MLflowLogger probe_timeout must be a positive number, got {probe_timeout!r}"
            )
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.log_checkpoint = log_checkpoint
        self.step = step
        self.strict = strict
        self.probe_timeout = float(probe_timeout)
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
        if not self._reachable(uri):
            return
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

    def _reachable(self, uri: str) -> bool:
        """Probe an http(s) server; warn (or raise, when strict) and say False if it does not answer."""
        reason = unreachable_reason(uri, self.probe_timeout)
        if reason is None:
            return True
        strict = self.strict if self.strict is not None else strict_from_environment()
        where = f"the MLflow tracking server at {redact_uri(uri)!r} does not answer: {reason}"
        if strict:
            raise TrackingUnreachableError(
                f"{where}. Strict tracking is on (strict=True or {STRICT_VARIABLE}=1), so the run "
                "stops before training. Start the server or fix the URI and network; or turn strict "
                "tracking off to train on with local files only."
            )
        warnings.warn(
            f"{where}. This run is not logged to MLflow; it trains on and writes its local files. "
            f"Start the server or fix the URI; {STRICT_VARIABLE}=1 makes this an error.",
            TrackingUnreachableWarning,
            stacklevel=2,
        )
        return False

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

    @property
    def connected(self) -> bool:
        """Whether a tracking run is open (on_train_begin reached the server and started one)."""
        return self.run_id is not None and self._client is not None

    def __repr__(self) -> str:
        uri = redact_uri(self.tracking_uri) if self.tracking_uri is not None else None
        return f"MLflowLogger(tracking_uri={uri!r}, experiment={self.experiment!r})"
