"""polyrl: Keras for reinforcement learning.

One typed API (train, play, evaluate, save, load, act, callbacks) over the RL libraries people
already trust, each wrapped by a pluggy plugin. Importing polyrl imports no backend library.

The names here are a user's; the rest lives by audience:
- `polyrl.callbacks`: the Callback base class, the run contexts and every shipped callback;
- `polyrl.errors`: every error polyrl raises (`PolyrlError` is also here);
- `polyrl.backend`: what a backend plugin author needs (BackendInfo, BackendDriver, hookimpl...);
- `polyrl.experience`: transitions in and out of agents (TransitionBatch, datasets, recording;
  `polyrl.cooperate` trains agents side by side that share them);
- `polyrl.tuning`: hyperparameter studies (`polyrl.tune` is their entry point; Optuna is imported
  only when one runs).
"""

import importlib
import warnings
from typing import Any

from polyrl.agent import Agent
from polyrl.callbacks import Callback
from polyrl.config import PlayConfig, TrainConfig
from polyrl.errors import PolyrlError
from polyrl.experience.cooperate import cooperate
from polyrl.manifest import CheckpointManifest
from polyrl.plugins import registry
from polyrl.records import COMMON_METRICS, EpisodeRecord, IterationRecord, PlayResult, StepRecord, TrainResult
from polyrl.spec import AgentSpec, EnvFactorySpec, NetworkSpec
from polyrl.tuning import tune
from polyrl.versions import polyrl_version

__version__ = polyrl_version()

__all__ = [
    "COMMON_METRICS",
    "Agent",
    "AgentSpec",
    "Callback",
    "CheckpointManifest",
    "EnvFactorySpec",
    "EpisodeRecord",
    "IterationRecord",
    "NetworkSpec",
    "PlayConfig",
    "PlayResult",
    "PolyrlError",
    "StepRecord",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "cooperate",
    "registry",
    "tune",
]

#: Names that moved to the module of their audience: still importable from `polyrl`, with a
#: DeprecationWarning naming the new place (removed in 0.3).
_MOVED = {
    **{
        name: "polyrl.callbacks"
        for name in (
            "APICallLogger",
            "CSVLogger",
            "EarlyStopping",
            "Evaluation",
            "JSONLinesLogger",
            "LearningRateScheduler",
            "MLflowLogger",
            "ModelCheckpoint",
            "MovieRecorder",
            "PlotCallback",
            "ProgressBar",
            "ReduceLROnPlateau",
            "RunConfig",
            "RunConfigLogger",
            "RunContext",
            "TensorBoard",
        )
    },
    **{
        name: "polyrl.errors"
        for name in (
            "BackendNotInstalledError",
            "CallbackError",
            "CheckpointBackendMismatchError",
            "CheckpointError",
            "CheckpointNotFoundError",
            "CheckpointWriteError",
            "ConfigurationError",
            "CorruptCheckpointError",
            "EnvStepError",
            "EnvironmentCreationError",
            "InvalidObservationError",
            "NonFiniteDataError",
            "PluginError",
            "RayConnectionError",
            "TrackingUnreachableError",
            "TrackingUnreachableWarning",
            "UnknownAlgorithmError",
            "UnknownBackendError",
            "UnsupportedOptionError",
            "UnsupportedSpaceError",
            "UntrustedCheckpointError",
        )
    },
    **{
        name: "polyrl.backend"
        for name in (
            "AlgorithmInfo",
            "BackendDriver",
            "BackendInfo",
            "EffectiveHyperparameters",
            "DriverReport",
            "EnvSource",
            "IterationReport",
            "hookimpl",
        )
    },
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'polyrl' has no attribute {name!r}")
    warnings.warn(
        f"polyrl.{name} moved: import it from {module} (`from {module} import {name}`)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
