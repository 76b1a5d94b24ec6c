"""MLflow as an installed integration: logs every train() call, no callback needed.

Installed through the "polyrl" entry-point group:

    [project.entry-points.polyrl]
    mlflow = "polyrl.integrations.mlflow:plugin"

and enabled per process by an environment variable:

- `POLYRL_MLFLOW_TRACKING_URI=<uri>` (e.g. `sqlite:///runs/mlflow.db` or an http server), or
  `POLYRL_MLFLOW=1` to use MLflow's default store (MLFLOW_TRACKING_URI, else ./mlflow.db);
- `POLYRL_MLFLOW_EXPERIMENT` names the experiment (default "polyrl");
- `POLYRL_MLFLOW_CHECKPOINT=0` skips uploading the final checkpoint;
- `POLYRL_MLFLOW_STRICT=1` stops a run before training when an http(s) tracking server does not
  answer (by default the run goes on without MLflow, with one TrackingUnreachableWarning).

It uses the same lifecycle hooks as a Callback (with `@polyrl.backend.hookimpl`) and the same
`MLflowLogger`; a run that already has an MLflowLogger in its callbacks is not logged twice.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING

from polyrl.callbacks.mlflow import MLflowLogger
from polyrl.hookspecs import hookimpl

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, TrainResult

URI_VARIABLE = "POLYRL_MLFLOW_TRACKING_URI"
ENABLE_VARIABLE = "POLYRL_MLFLOW"
EXPERIMENT_VARIABLE = "POLYRL_MLFLOW_EXPERIMENT"
CHECKPOINT_VARIABLE = "POLYRL_MLFLOW_CHECKPOINT"
_FALSE = {"", "0", "false", "no", "off"}


class MLflowIntegration:
    """The plugin object: one MLflowLogger per train() call while enabled."""

    def __init__(self) -> None:
        # Keyed weakly by the run's context so a run that raised leaves nothing behind.
        self._loggers: weakref.WeakKeyDictionary[TrainContext, MLflowLogger] = weakref.WeakKeyDictionary()

    @staticmethod
    def enabled() -> bool:
        """Whether the environment asks for MLflow logging."""
        if os.environ.get(URI_VARIABLE):
            return True
        return os.environ.get(ENABLE_VARIABLE, "").strip().lower() not in _FALSE

    @hookimpl
    def on_train_begin(self, context: TrainContext) -> None:
        """Start an MLflow run for this train() call when enabled."""
        if not self.enabled():
            return
        logger = MLflowLogger(
            tracking_uri=os.environ.get(URI_VARIABLE) or None,
            experiment=os.environ.get(EXPERIMENT_VARIABLE) or "polyrl",
            log_checkpoint=os.environ.get(CHECKPOINT_VARIABLE, "1").strip().lower() not in _FALSE,
            tags={"polyrl.logged_by": "polyrl.integrations.mlflow"},
        )
        logger.on_train_begin(context)
        if logger.connected:
            self._loggers[context] = logger

    @hookimpl
    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        """Log the iteration's metrics."""
        logger = self._loggers.get(context)
        if logger is not None:
            logger.on_iteration_end(context, record)

    @hookimpl
    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        """Upload the final checkpoint and close the run."""
        logger = self._loggers.pop(context, None)
        if logger is not None:
            logger.on_train_end(context, result)

    def __repr__(self) -> str:
        return "polyrl.integrations.mlflow"


#: What the entry point names.
plugin = MLflowIntegration()
