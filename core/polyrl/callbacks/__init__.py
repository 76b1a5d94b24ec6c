"""Keras-style callbacks: the base class, the run context they receive, and the shipped callbacks.

Every shipped callback talks only to the run's context (never to a backend library), so it
behaves the same on every backend. Heavy libraries (matplotlib, mlflow, tensorboard, imageio,
torch) are imported inside the methods that need them, never when polyrl is imported.
"""

from polyrl.callbacks.api_log import APICall, APICallLogger
from polyrl.callbacks.base import Callback
from polyrl.callbacks.checkpoint import ModelCheckpoint
from polyrl.callbacks.context import PlayContext, RunContext, TrainContext
from polyrl.callbacks.early_stopping import EarlyStopping
from polyrl.callbacks.evaluation import Evaluation
from polyrl.callbacks.loggers import CSVLogger, JSONLinesLogger, RunConfig, RunConfigLogger, run_loggers
from polyrl.callbacks.lr_schedule import LearningRateScheduler, ReduceLROnPlateau
from polyrl.callbacks.mlflow import MLflowLogger
from polyrl.callbacks.monitor import Monitor, declare_metrics
from polyrl.callbacks.movies import MovieRecorder
from polyrl.callbacks.plots import PlotCallback
from polyrl.callbacks.progress import ProgressBar
from polyrl.callbacks.tensorboard import TensorBoard
from polyrl.errors import RenderError, UnknownMetricError
from polyrl.experience.recorder import ExperienceRecorder

__all__ = [
    "APICall",
    "APICallLogger",
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "Evaluation",
    "ExperienceRecorder",
    "JSONLinesLogger",
    "LearningRateScheduler",
    "MLflowLogger",
    "ModelCheckpoint",
    "Monitor",
    "MovieRecorder",
    "PlayContext",
    "PlotCallback",
    "ProgressBar",
    "ReduceLROnPlateau",
    "RenderError",
    "RunConfig",
    "RunConfigLogger",
    "RunContext",
    "TensorBoard",
    "TrainContext",
    "UnknownMetricError",
    "declare_metrics",
    "run_loggers",
]
