"""polyrl: Keras for reinforcement learning.

One typed API (train, play, evaluate, save, load, act, callbacks) over the RL libraries people
already trust, each wrapped by a pluggy plugin. Importing polyrl imports no backend library.
"""

from polyrl.agent import Agent
from polyrl.backend import AlgorithmInfo, BackendDriver, BackendInfo, EffectiveHyperparameters
from polyrl.callbacks import (
    APICallLogger,
    Callback,
    CSVLogger,
    EarlyStopping,
    Evaluation,
    JSONLinesLogger,
    LearningRateScheduler,
    MLflowLogger,
    ModelCheckpoint,
    MovieRecorder,
    PlotCallback,
    ProgressBar,
    ReduceLROnPlateau,
    RunConfig,
    RunConfigLogger,
    RunContext,
    TensorBoard,
)
from polyrl.config import PlayConfig, TrainConfig
from polyrl.envs import EnvSource
from polyrl.errors import (
    BackendNotInstalledError,
    CallbackError,
    CheckpointBackendMismatchError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointWriteError,
    ConfigurationError,
    CorruptCheckpointError,
    EnvironmentCreationError,
    EnvStepError,
    InvalidObservationError,
    NonFiniteDataError,
    PluginError,
    PolyrlError,
    RayConnectionError,
    TrackingUnreachableError,
    TrackingUnreachableWarning,
    UnknownAlgorithmError,
    UnknownBackendError,
    UnsupportedOptionError,
    UnsupportedSpaceError,
    UntrustedCheckpointError,
)
from polyrl.hookspecs import hookimpl
from polyrl.manifest import CheckpointManifest
from polyrl.plugins import registry
from polyrl.records import (
    COMMON_METRICS,
    EpisodeRecord,
    IterationRecord,
    IterationReport,
    PlayResult,
    StepRecord,
    TrainResult,
)
from polyrl.spec import AgentSpec, EnvFactorySpec, NetworkSpec
from polyrl.versions import polyrl_version

__version__ = polyrl_version()

__all__ = [
    "COMMON_METRICS",
    "APICallLogger",
    "Agent",
    "AgentSpec",
    "AlgorithmInfo",
    "BackendDriver",
    "BackendInfo",
    "BackendNotInstalledError",
    "CSVLogger",
    "Callback",
    "CallbackError",
    "CheckpointBackendMismatchError",
    "CheckpointError",
    "CheckpointManifest",
    "CheckpointNotFoundError",
    "CheckpointWriteError",
    "ConfigurationError",
    "CorruptCheckpointError",
    "EarlyStopping",
    "EffectiveHyperparameters",
    "EnvFactorySpec",
    "EnvSource",
    "EnvStepError",
    "EnvironmentCreationError",
    "EpisodeRecord",
    "Evaluation",
    "InvalidObservationError",
    "IterationRecord",
    "IterationReport",
    "JSONLinesLogger",
    "LearningRateScheduler",
    "MLflowLogger",
    "ModelCheckpoint",
    "MovieRecorder",
    "NetworkSpec",
    "NonFiniteDataError",
    "PlayConfig",
    "PlayResult",
    "PlotCallback",
    "PluginError",
    "PolyrlError",
    "ProgressBar",
    "RayConnectionError",
    "ReduceLROnPlateau",
    "RunConfig",
    "RunConfigLogger",
    "RunContext",
    "StepRecord",
    "TensorBoard",
    "TrackingUnreachableError",
    "TrackingUnreachableWarning",
    "TrainConfig",
    "TrainResult",
    "UnknownAlgorithmError",
    "UnknownBackendError",
    "UnsupportedOptionError",
    "UnsupportedSpaceError",
    "UntrustedCheckpointError",
    "__version__",
    "hookimpl",
    "registry",
]
