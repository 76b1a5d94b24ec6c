"""Agent: the one object a user trains, plays, evaluates, saves, loads and acts with."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from polyrl.acting import act_on
from polyrl.agent_checkpoint import load_parts, save_parts
from polyrl.callbacks.callback_list import CallbackList
from polyrl.callbacks.context import PlayContext, TrainContext
from polyrl.config import PlayConfig, TrainConfig
from polyrl.envs import EnvSource
from polyrl.errors import ConfigurationError
from polyrl.experience.transfer import add_to_buffer, sample_from_buffer
from polyrl.manifest import CheckpointManifest
from polyrl.playing import run_play
from polyrl.plugins import registry
from polyrl.presets import PresetChoice
from polyrl.run import AgentParts, Run, build_parts
from polyrl.spec import AgentSpec, EnvFactorySpec
from polyrl.training import TrainingLoop, run_training

ConfigT = TypeVar("ConfigT", TrainConfig, PlayConfig)
T = TypeVar("T")

if TYPE_CHECKING:
    from polyrl.backend import BackendDriver, BackendInfo, EffectiveHyperparameters
    from polyrl.experience.batch import TransitionBatch
    from polyrl.records import PlayResult, TrainResult


def _spec_from(spec: AgentSpec | dict[str, Any] | None, fields: dict[str, Any]) -> AgentSpec:
    if spec is None:
        return AgentSpec(**fields)
    if fields:
        raise ConfigurationError(
            f"pass either a spec or keyword fields, not both (got a spec and {sorted(fields)})"
        )
    return spec if isinstance(spec, AgentSpec) else AgentSpec.model_validate(spec)


class Agent:
    """A reinforcement-learning agent on any installed backend.

    >>> agent = Agent(backend="sb3", algorithm="ppo", env="CartPole-v1", seed=0)
    >>> agent.train(TrainConfig(total_steps=50_000))
    >>> agent.evaluate(episodes=10).return_mean

    The fields are those of `AgentSpec`; invalid ones fail before any backend library loads.
    """

    def __init__(self, spec: AgentSpec | dict[str, Any] | None = None, /, **fields: Any) -> None:
        self._parts = build_parts(_spec_from(spec, fields), _create)
        self._runs: list[Run] = []  # the calls in progress, innermost last (play inside train)

    @classmethod
    def _from_parts(cls, parts: AgentParts) -> Agent:
        agent = cls.__new__(cls)
        # The class initialises its own new instance (what __init__ does for a spec).
        agent._parts = parts  # noqa: SLF001
        agent._runs = []  # noqa: SLF001
        return agent

    # -- what the agent is -------------------------------------------------------------------
    @property
    def spec(self) -> AgentSpec:
        """The spec this agent trains with: the one given, its preset's settings in the fields left
        unset (`preset` names it). A copy; changing it changes nothing."""
        return self._parts.spec.model_copy(deep=True)

    @property
    def backend(self) -> str:
        """The name of this agent's backend (what `Agent(backend=...)` took)."""
        return self._parts.spec.backend

    @property
    def backend_info(self) -> BackendInfo:
        """The BackendInfo of this agent's backend: its library, algorithms and spaces."""
        return self._parts.info

    @property
    def env_source(self) -> EnvSource:
        """Builds fresh environments of this agent's spec."""
        return self._parts.env

    @property
    def observation_space(self) -> Any:
        """The environment's observation space."""
        return self._parts.env.observation_space

    @property
    def action_space(self) -> Any:
        """The environment's action space."""
        return self._parts.env.action_space

    @property
    def env_steps(self) -> int:
        """Env steps collected in training over the agent's life (continues after load)."""
        return self._parts.driver.env_steps

    @property
    def iterations(self) -> int:
        """Training iterations over the agent's life (continues after load)."""
        return self._parts.iterations

    @property
    def episodes(self) -> int:
        """Training episodes completed over the agent's life (continues after load)."""
        return self._parts.episodes

    @property
    def learning_rate(self) -> float:
        """The learning rate the backend's optimizer uses now; settable."""
        return self._parts.driver.get_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        # 0 is allowed here (it freezes the policy for a while); a spec's learning rate is > 0.
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf"):
            raise ConfigurationError(f"learning_rate must be a finite number >= 0, got {value!r}")
        driver = self._parts.driver
        self._timed(
            "driver", "set_learning_rate", lambda: driver.set_learning_rate(float(value)), f"{value:g}"
        )
        self._parts.learning_rate_by_hand = True  # a learning-rate schedule in the spec gives way

    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable parameters (what the optimizers update) as NumPy copies, by name."""
        return self._parts.driver.parameters()

    @property
    def replay_size(self) -> int | None:
        """Transitions in the replay buffer (off-policy algorithms); None when there is none."""
        return self._parts.driver.replay_size()

    @property
    def preset(self) -> PresetChoice | None:
        """The preset that filled this agent's unset fields (name, source, fields), or None."""
        return self._parts.preset

    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """The hyperparameters the native library object holds, in common and native names.

        `preset` and `preset_source` name the preset that filled the fields the spec left unset.
        """
        values = self._parts.driver.effective_hyperparameters()
        choice = self._parts.preset
        if choice is None:
            return values
        return values.model_copy(update={"preset": choice.name, "preset_source": choice.source})

    @property
    def native(self) -> Any:
        """The wrapped library object (e.g. the SB3 model), to reach past polyrl."""
        return self._parts.driver.native()

    # -- running -----------------------------------------------------------------------------
    def _start(self, callbacks: Sequence[object]) -> Run:
        run = Run(self, self._parts, CallbackList(callbacks, registry().lifecycle_plugins()))
        self._runs.append(run)
        return run

    def train(
        self,
        config: TrainConfig | None = None,
        callbacks: Sequence[object] = (),
        **fields: Any,
    ) -> TrainResult:
        """Train until a limit of `config` (or `TrainConfig(**fields)`) or a callback's stop.

        Raises CallbackError (with `.result` holding the records so far) if a callback fails;
        the agent keeps what it learned and stays usable.
        """
        config = _config_from(TrainConfig, config, fields)
        run = self._start(callbacks)
        try:
            return run_training(run, TrainContext(run, config))
        finally:
            self._runs.remove(run)

    @contextlib.contextmanager
    def training(
        self,
        config: TrainConfig | None = None,
        callbacks: Sequence[object] = (),
        **fields: Any,
    ) -> Iterator[TrainingLoop]:
        """train(), one iteration per `loop.step()` call: `with agent.training(...) as loop:`.

        on_train_begin runs on entry and on_train_end on a normal exit (the result is then in
        `loop.result`); leaving early is fine: the run ends there ("stopped"). What
        `polyrl.cooperate` uses to step several agents in turn.
        """
        config = _config_from(TrainConfig, config, fields)
        run = self._start(callbacks)
        try:
            loop = TrainingLoop(run, TrainContext(run, config))
            loop.begin()
            yield loop
            loop.finish()
        finally:
            self._runs.remove(run)

    def play(
        self,
        config: PlayConfig | None = None,
        callbacks: Sequence[object] = (),
        **fields: Any,
    ) -> PlayResult:
        """Play episodes in a fresh env (deterministic by default) and return their statistics."""
        config = _config_from(PlayConfig, config, fields)
        run = self._start(callbacks)
        try:
            return run_play(run, PlayContext(run, config))
        finally:
            self._runs.remove(run)

    def evaluate(
        self,
        config: PlayConfig | None = None,
        callbacks: Sequence[object] = (),
        **fields: Any,
    ) -> PlayResult:
        """Deterministic play: the policy's greedy performance (`play` with deterministic=True).

        Takes a PlayConfig or its keyword fields like play(), e.g. `evaluate(episodes=10)`.
        """
        config = _config_from(PlayConfig, config, fields)
        if not config.deterministic:
            raise ConfigurationError(
                "evaluate() plays deterministically; use play(deterministic=False) for stochastic episodes"
            )
        return self.play(config, callbacks=callbacks)

    def act(self, observation: Any, deterministic: bool = True) -> Any:
        """The action for one observation, or actions for a batch (leading axis = batch).

        A single Discrete action comes back as an int; Box actions as arrays of the space's
        dtype and shape, clipped into its bounds. Observations are those of the agent's env
        (after the spec's wrappers); a Discrete, Tuple or Dict observation may be given as the
        env returns it (polyrl encodes it) or already encoded. With `normalize`, the agent
        normalises them with its frozen statistics.
        """
        return act_on(self._parts, observation, deterministic)

    def _timed(self, target: str, method: str, fn: Callable[[], T], summary: str) -> T:
        """Call `fn`, reported to the innermost run's on_api_call listeners (if a run is on)."""
        return self._runs[-1].timed(target, method, fn, summary) if self._runs else fn()

    # -- experience (docs/experience.md) -----------------------------------------------------
    def add_experience(self, experience: TransitionBatch | str | os.PathLike[str]) -> int:
        """Put transitions into the replay buffer; return how many rows went in.

        `experience` is a TransitionBatch or a dataset (a .npz file polyrl wrote, a Minari
        dataset directory or id). The rows are checked against this agent's spaces and sampled
        like collected ones; env_steps, episodes and iterations stay as they were. Off-policy
        algorithms only (UnsupportedOptionError names those that can); ExperienceError when the
        transitions do not fit, or this agent normalises observations or rewards.
        """
        return add_to_buffer(self._parts, experience, self._driver_call)

    def load_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Set the trainable parameters (names and shapes as `parameters()` gives them).

        Another agent's of the same backend, algorithm and network (a follower in
        `polyrl.cooperate`); optimizer state and counters stay. UnsupportedOptionError when the
        backend cannot.
        """
        self._driver_call("load_parameters", lambda: self._parts.driver.load_parameters(values), "")

    def sample_experience(self, n: int) -> TransitionBatch:
        """`n` transitions drawn by the library's own replay sampler: what the learner trains on."""
        return sample_from_buffer(self._parts, n, self._driver_call)

    def _driver_call(self, method: str, fn: Callable[[], T], summary: str) -> T:
        return self._timed("driver", method, fn, summary)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> CheckpointManifest:
        """Write a checkpoint directory (manifest + native files) atomically; return its manifest.

        A crash mid-save leaves any previous checkpoint at `path` intact.
        """
        parts = self._parts
        return self._timed("driver", "save", lambda: save_parts(parts, Path(path), metadata), str(path))

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: str | Callable[..., Any] | EnvFactorySpec | None = None,
        backend: str | None = None,
        *,
        trust_env_factory: bool = False,
        device: str | None = None,
    ) -> Agent:
        """Rebuild an agent from a checkpoint directory; training continues where it stopped.

        `env` replaces the saved env (needed when it was a callable that cannot be imported);
        `backend`, if given, must match the checkpoint's backend. A checkpoint whose env is a
        factory ("module:function", or a Gymnasium id with a "module:" prefix) names code that
        loading would import and call: that needs `env=` (you supply the env) or
        `trust_env_factory=True` (you trust whoever wrote the checkpoint), else
        UntrustedCheckpointError. See docs/security.md. `device` loads onto another device than
        the saved spec's ("cpu" for a GPU-trained agent on a laptop).
        """
        return cls._from_parts(load_parts(Path(path), env, backend, trust_env_factory, device))

    def restore(self, path: str | Path) -> None:
        """Put this agent, in place, into the state saved at `path` (weights, optimizer, counters).

        The checkpoint must have been saved from an agent of the same backend; this agent's env
        is kept (no code the checkpoint names is imported). The backend objects this agent held
        are closed. Called from a callback, the run goes on from the restored state.
        `EarlyStopping(restore_best=True)` uses this to go back to the best iteration.
        """
        parts = load_parts(Path(path), self._parts.spec.env, self._parts.spec.backend, False)
        previous, self._parts = self._parts, parts
        for run in self._runs:
            run.parts = parts
        previous.driver.close()

    def close(self) -> None:
        """Release the backend's envs and processes."""
        self._parts.driver.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Agent(backend={self._parts.spec.backend!r}, algorithm={self._parts.spec.algorithm!r}, "
            f"env={self._parts.env.name!r}, env_steps={self.env_steps}, iterations={self.iterations})"
        )


def _config_from(kind: type[ConfigT], config: ConfigT | None, fields: dict[str, Any]) -> ConfigT:
    """The run's own copy of `config`, or `kind(**fields)`: train, play and evaluate take either."""
    if config is not None and fields:
        raise ConfigurationError(
            f"pass either a {kind.__name__} or keyword fields, not both (got one and {sorted(fields)})"
        )
    if config is None:
        return kind(**fields)
    if not isinstance(config, kind):
        raise ConfigurationError(f"expected a {kind.__name__}, got {type(config).__name__}")
    return config.model_copy()


def _create(driver_class: type[BackendDriver], spec: AgentSpec, env: EnvSource) -> BackendDriver:
    return driver_class.create(spec, env)
