"""What a backend plugin provides: a BackendInfo describing it and a BackendDriver doing the work.

The backend author's names, all importable from here: `BackendInfo`, `AlgorithmInfo`,
`BackendDriver`, `DriverReport` (what `train_iteration` returns), `EffectiveHyperparameters`,
`EnvSource` (what the core hands a driver) and `hookimpl` (to mark `polyrl_backends`).
See docs/plugin-authors.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, JsonValue

from polyrl._model import StrictModel
from polyrl.envs import EnvSource, SpaceKind
from polyrl.hookspecs import hookimpl
from polyrl.observations.network import EncoderDescription
from polyrl.records import DriverReport, IterationReport

if TYPE_CHECKING:
    import numpy as np

    from polyrl.experience.batch import TransitionBatch
    from polyrl.spec import AgentSpec

__all__ = [
    "AlgorithmInfo",
    "BackendDriver",
    "BackendInfo",
    "DriverReport",
    "EffectiveHyperparameters",
    "EnvSource",
    "IterationReport",
    "hookimpl",
]


def _box_only() -> list[SpaceKind]:
    return ["box"]


class AlgorithmInfo(StrictModel):
    """One algorithm of a backend and the spaces it handles."""

    observation_spaces: list[SpaceKind] = Field(default_factory=_box_only)
    action_spaces: list[SpaceKind]
    on_policy: bool
    description: str = ""
    features: list[str] = Field(default_factory=list)
    """Optional spec features this algorithm honours (names of `polyrl.features.FEATURES`)."""


class BackendInfo(StrictModel):
    """How a plugin describes a backend to polyrl, without importing the backend's library.

    `driver` is the import path ("package.module:Class") of the BackendDriver subclass; it is
    imported on first use only. `requires` lists the top-level modules the driver needs;
    when one is missing, polyrl tells the user to run `pip install {install_hint}`.
    `unsupported` declares conformance checks the backend knowingly does not meet, with why;
    `conformance_overrides` gives, per algorithm, the spec fields of a tiny behaviour-check run.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    driver: str = Field(pattern=r"^[\w.]+:\w+$")
    library: str = Field(description="The distribution name of the wrapped library, for versions.")
    requires: list[str] = Field(default_factory=list)
    install_hint: str
    algorithms: dict[str, AlgorithmInfo]
    deterministic: bool = Field(
        default=True,
        description="Same seed and spec give identical statistics on this machine.",
    )
    unsupported: dict[str, str] = Field(default_factory=dict)
    conformance_overrides: dict[str, dict[str, JsonValue]] = Field(
        default_factory=dict,
        description="Per algorithm, AgentSpec fields that make a run tiny (small iterations and "
        "buffers) for the conformance suite's behaviour checks, which test API, not learning.",
    )


class EffectiveHyperparameters(StrictModel):
    """The hyperparameters the native library object really holds after the spec was mapped."""

    learning_rate: float
    gamma: float
    hidden: list[int]
    activation: str
    n_envs: int
    batch_size: int | None = None
    iteration_steps: int
    device: str = "cpu"
    """The torch device the networks are on ("cpu", "cuda:0")."""
    encoder: EncoderDescription | None = None
    """The observation encoder built (kind "mlp" or "cnn" with its conv layers); None: not reported."""
    native: dict[str, JsonValue] = Field(default_factory=dict)
    preset: str | None = None
    """The preset that filled the fields the spec left unset (the core sets it; drivers leave it)."""
    preset_source: str | None = None
    """Where the preset's values come from (an RL Zoo3 file and entry, a polyrl measurement)."""


class BackendDriver(ABC):
    """One backend's implementation of an agent; the core owns the loop and calls it.

    A driver is built by `create` (fresh) or `load` (from its own files) and then, one call at
    a time from the core: runs a training iteration, acts on a batch of observations, reads and
    sets the learning rate, and saves its native files into a directory the core provides.
    """

    @classmethod
    @abstractmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> BackendDriver:
        """Build a new, untrained agent from the spec."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> BackendDriver:
        """Rebuild an agent from files `save` wrote into `directory`, ready to act and train."""

    @abstractmethod
    def train_iteration(self) -> DriverReport:
        """Run one collect + update cycle and report it."""

    @abstractmethod
    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        """Actions for a batch of observations (leading axis = batch; a Box: the core encodes the rest)."""

    @abstractmethod
    def get_learning_rate(self) -> float:
        """The learning rate the optimizer uses now."""

    @abstractmethod
    def set_learning_rate(self, value: float) -> None:
        """Set the optimizer's learning rate from now on."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything `load` needs to continue exactly into an empty directory.

        That is weights, optimizer state, the replay buffer, native counters (what drives the
        library's schedules) and the random state, in formats that run no code at load.
        """

    @abstractmethod
    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """The values the native library object holds."""

    @property
    @abstractmethod
    def env_steps(self) -> int:
        """Env steps collected over the agent's life (continues after load)."""

    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable parameters the optimizers update, as NumPy copies by name.

        What "the policy changed" means: the conformance suite checks that an iteration at
        learning rate 0 leaves them equal, and that a resumed agent continues from the same
        values. Torch drivers get them from `polyrl.driverkit.optimizer_parameters`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement parameters(): return the trainable parameters "
            "(what the optimizers update) as a dict of NumPy arrays"
        )

    def load_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Set the trainable parameters to `values` (names and shapes as `parameters()` gives them).

        Optional: what a follower does in `polyrl.cooperate`. Torch drivers implement it with
        `polyrl.driverkit.load_optimizer_parameters`. Optimizer state and counters stay.
        """
        from polyrl.errors import UnsupportedOptionError

        raise UnsupportedOptionError(
            f"{type(self).__name__} cannot load parameters (it does not implement load_parameters)"
        )

    def replay_size(self) -> int | None:
        """Transitions held in the replay buffer; None for algorithms without one (on-policy).

        The core reports it as the `replay_size` metric of every iteration; off-policy
        algorithms must report it, and a checkpoint must keep the buffer.
        """
        return None

    def set_horizon(self, end_env_steps: int | None) -> None:  # noqa: B027 - optional hook
        """The lifetime env-step count the current train() call aims to end at (None: unknown).

        Called before every iteration; drivers whose native schedules (exploration, progress)
        depend on the planned length use it, so chunked training matches one long native run.
        """

    def set_scheduled(self, name: str, value: float) -> None:
        """Make the native library use `value` for the hyperparameter `name` from now on.

        `name` is "clip_range" (PPO), "ent_coef" (PPO, A2C) or "epsilon" (DQN's exploration).
        The core calls it before every iteration of a spec that schedules `name` (see
        `polyrl.schedules`), which it only builds when the algorithm declares the feature
        "schedule.<name>" in `AlgorithmInfo.features`. The value must hold for the whole coming
        iteration and stick: a library that re-applies a schedule of its own needs that schedule
        replaced by the constant (as `set_learning_rate` does for learning rates).
        """
        from polyrl.errors import UnsupportedOptionError

        raise UnsupportedOptionError(
            f"{type(self).__name__} cannot set {name} during training: a backend that declares the "
            f'feature "schedule.{name}" must implement set_scheduled and get_scheduled'
        )

    def get_scheduled(self, name: str) -> float | None:
        """The value of `name` ("clip_range", "ent_coef", "epsilon") the native library holds now.

        Read from the library object, not remembered from `set_scheduled`: the core reports it
        in `IterationRecord.metrics[name]` after every iteration of a run that schedules it.
        None: the driver cannot tell (then nothing is reported).
        """
        return None

    def add_experience(self, batch: TransitionBatch) -> None:
        """Put external transitions into the replay buffer, through the library's own buffer API.

        Declared by the feature "experience.add" (off-policy algorithms). `batch` already fits
        the agent's spaces (the core checked and cast it). The rows must become ordinary buffer
        rows: sampled like collected ones and kept by `save`. Env-step, episode and iteration
        counters (and whatever drives the library's schedules) stay as they were.
        """
        from polyrl.errors import UnsupportedOptionError

        raise UnsupportedOptionError(
            f"{type(self).__name__} cannot take external transitions: a backend that declares the "
            'feature "experience.add" must implement add_experience and sample_experience'
        )

    def sample_experience(self, n: int) -> TransitionBatch:
        """`n` transitions drawn by the library's own replay sampler (feature "experience.add").

        What the learner would train on; the conformance suite uses it to check that added
        transitions are sampled. Observations as stored (normalised when the spec normalises),
        actions in the env's action space.
        """
        from polyrl.errors import UnsupportedOptionError

        raise UnsupportedOptionError(f"{type(self).__name__} has no replay buffer to sample from")

    def set_collecting(self, on: bool) -> None:
        """Start (True) or stop keeping the transitions train_iteration collects (feature
        "experience.collect"); off by default, so runs that do not share experience pay nothing."""
        from polyrl.errors import UnsupportedOptionError

        raise UnsupportedOptionError(
            f"{type(self).__name__} cannot report the transitions it collects: a backend that "
            'declares the feature "experience.collect" must implement set_collecting and take_collected'
        )

    def take_collected(self) -> TransitionBatch:
        """The transitions collected since collecting started or the last call, then forgets them.

        Every env step of train_iteration once, per env slot in step order, with the env's raw
        rewards and the true final observation of each episode; observations as the library
        saw them; actions as sent to the env (in the env's action space).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement take_collected()")

    def native(self) -> Any:
        """The wrapped library object, for users who need to reach past polyrl."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook with a sensible no-op default
        """Release envs, processes and other resources."""
