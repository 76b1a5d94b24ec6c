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


class DeviceUnavailableError(ConfigurationError):
    """The spec asks for a device (e.g. "cuda:1") that this machine's torch cannot use."""


class BackendNotInstalledError(PolyrlError, ImportError):
    """A known backend whose library is not installed; the message names the extra."""


class ExtraNotInstalledError(PolyrlError, ImportError):
    """A feature needs an optional library that is not installed; the message names the extra.

    E.g. `polyrl tune` without Optuna: "pip install 'polyrl[tune]'".
    """


class SearchSpaceError(ConfigurationError):
    """A tuning search space that cannot be searched; every problem is named by its field path.

    Raised before any trial starts: an unknown field, a section of another algorithm, a
    distribution that does not fit the field's type, an empty or inverted range, a log range
    reaching zero, or a value (a categorical choice, a range's end) the AgentSpec rejects.
    """


class StudyError(ConfigurationError):
    """A tuning study cannot be started or continued as asked (it exists already, it is missing,
    its storage does not answer, or the options given differ from the study's plan)."""


class ExperienceError(PolyrlError, ValueError):
    """Transitions that cannot be recorded, read, or taken by an agent (another env's shapes, a
    dataset that is missing or malformed, a backend without a replay buffer); the message says
    which and what to do."""


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


class EnvStepError(PolyrlError, RuntimeError):
    """The environment failed in reset() or step(); nothing was learned from that step.

    Raised when the env raised (its exception is chained as `__cause__` where it ran in this
    process; across processes `error_type` and `error_text` keep its type name and text), and,
    as the subclass `NonFiniteDataError`, when it returned NaN or infinity. The same type on
    every backend, since every backend builds its envs through `EnvSource.make`.

    Attributes: `env` (EnvSource.name), `where` ("reset" or "step"), `step` (the env step within
    the episode: 0 for reset(), n for the n-th step() after it), `episode` (1 for this env
    copy's first episode), `error_type` and `error_text` (the env's own exception; "" for
    non-finite data).
    """

    def __init__(
        self,
        message: str,
        *,
        env: str = "",
        where: str = "",
        step: int = 0,
        episode: int = 0,
        error_type: str = "",
        error_text: str = "",
    ) -> None:
        # Only the message goes to Exception's args: unpickling (SubprocVecEnv, Ray) calls
        # cls(*args), then restores these attributes from __dict__.
        super().__init__(message)
        self.env = env
        self.where = where
        self.step = step
        self.episode = episode
        self.error_type = error_type
        self.error_text = error_text


class NonFiniteDataError(EnvStepError, ValueError):
    """The environment returned a NaN or infinite reward or float observation.

    Raised while collecting experience, before any update used the data, so the agent keeps its
    last finite parameters and can be saved. `AgentSpec.check_finite=False` turns the check off.
    Attributes beyond EnvStepError's: `what` ("observation" or "reward"), `key` (the path of the
    offending leaf of a Dict/Tuple observation, e.g. "pos" or "arm.0"; None otherwise) and
    `values` (the offending values, e.g. "nan at index (2,)").
    """

    def __init__(
        self,
        message: str,
        *,
        what: str = "",
        key: str | None = None,
        values: str = "",
        env: str = "",
        where: str = "",
        step: int = 0,
        episode: int = 0,
    ) -> None:
        super().__init__(message, env=env, where=where, step=step, episode=episode)
        self.what = what
        self.key = key
        self.values = values


class RenderError(ConfigurationError):
    """The env cannot render as asked: no rgb_array frames for a movie, or no display for a window."""


class UnknownMetricError(ConfigurationError):
    """A monitored metric name that the run does not record."""


class PolyrlWarning(UserWarning):
    """Base class of every warning polyrl issues on purpose."""


class PluginLoadWarning(PolyrlWarning):
    """An entry point of the "polyrl" group failed to load, or loaded but registered nothing."""


class RayConnectionError(PolyrlError, ConnectionError):
    """A Ray cluster address did not answer as a Ray cluster within the connect timeout."""


class TrackingUnreachableError(PolyrlError, ConnectionError):
    """The experiment-tracking server (MLflow) did not answer and strict tracking was asked for."""


class TrackingUnreachableWarning(PolyrlWarning):
    """The experiment-tracking server did not answer; the run continues on its local files."""
