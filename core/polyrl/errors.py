"""Every error polyrl raises on purpose; each message says what was wrong and what to do."""

from __future__ import annotations

from typing import Any


class PolyrlError(Exception):
    """Base class of every error polyrl raises on purpose."""


class ConfigurationError(PolyrlError, ValueError):
    """The spec or a config asks for something that cannot be built."""


class UnknownBackendError(ConfigurationError):
    """No installed plugin provides the backend named in the spec."""


class UnknownAlgorithmError(ConfigurationError):
    """The backend does not provide the algorithm named in the spec."""


class UnsupportedSpaceError(ConfigurationError):
    """The algorithm cannot handle the environment's observation or action space."""


class UnsupportedOptionError(ConfigurationError):
    """A spec field or backend option the backend cannot honour."""


class BackendNotInstalledError(PolyrlError, ImportError):
    """A known backend whose library is not installed; the message names the extra."""


class EnvironmentCreationError(PolyrlError):
    """The environment could not be created from the spec (unknown id, failing factory)."""


class CheckpointError(PolyrlError):
    """A checkpoint could not be written or read."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint directory does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The directory is not a complete polyrl checkpoint (foreign, truncated or edited)."""


class UntrustedCheckpointError(CheckpointError):
    """Loading would import code the checkpoint names (an env factory) without the caller's consent."""


class CheckpointWriteError(CheckpointError, OSError):
    """The OS refused a write of a checkpoint (read-only directory, a file in the way, disk full)."""


class CheckpointBackendMismatchError(CheckpointError):
    """The checkpoint was written by another backend than the one asked for."""


class CallbackError(PolyrlError):
    """A user callback raised; the run stopped, the agent is still usable.

    `callback` and `hook` name what failed; when training, `result` holds the run's records so
    far (a TrainResult), else None.
    """

    def __init__(self, message: str, callback: object, hook: str) -> None:
        super().__init__(message)
        self.callback = callback
        self.hook = hook
        self.result: Any = None


class PluginError(PolyrlError):
    """A plugin registered something invalid (a duplicate backend name, a bad driver path)."""


class InvalidObservationError(PolyrlError, ValueError):
    """An observation given to act() does not fit the env's observation space."""


class RenderError(ConfigurationError):
    """The env cannot render as asked: no rgb_array frames for a movie, or no display for a window."""


class UnknownMetricError(ConfigurationError):
    """A monitored metric name that the run does not record."""


class PolyrlWarning(UserWarning):
    """Base class of every warning polyrl issues on purpose."""


class PluginLoadWarning(PolyrlWarning):
    """An entry point of the "polyrl" group failed to load, or loaded but registered nothing."""
