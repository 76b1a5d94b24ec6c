"""Agent: the one object a user trains, plays, evaluates, saves, loads and acts with."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from polyrl.callbacks.callback_list import CallbackList
from polyrl.callbacks.context import PlayContext, TrainContext
from polyrl.checkpoint import read_manifest, write_checkpoint
from polyrl.config import PlayConfig, TrainConfig
from polyrl.envs import EnvSource, batch_observations, is_single_observation, space_kind
from polyrl.errors import (
    CheckpointBackendMismatchError,
    ConfigurationError,
    InvalidObservationError,
    UntrustedCheckpointError,
)
from polyrl.experience.transfer import add_to_buffer, sample_from_buffer
from polyrl.manifest import NATIVE_DIR, CheckpointManifest, FileEntry
from polyrl.observations.encoding import encode_for_act
from polyrl.playing import run_play
from polyrl.plugins import library_version, registry
from polyrl.presets import PresetChoice
from polyrl.run import AgentParts, Run, build_parts
from polyrl.spec import AgentSpec, EnvFactorySpec
from polyrl.training import TrainingLoop, run_training
from polyrl.versions import environment_versions, polyrl_version

ConfigT = TypeVar("ConfigT", TrainConfig, PlayConfig)
T = TypeVar("T")

if TYPE_CHECKING:
    from gymnasium.spaces import Box

    from polyrl.backend import BackendDriver, BackendInfo, EffectiveHyperparameters
    from polyrl.experience.batch import TransitionBatch
    from polyrl.records import PlayResult, TrainResult


def _refuse_named_code(path: Path, spec: AgentSpec) -> None:
    """Raise UntrustedCheckpointError if building the saved env would import code the file names."""
    if isinstance(spec.env, EnvFactorySpec):
        what = f"the env factory {spec.env.factory!r}"
        if spec.env.kwargs or spec.env_kwargs:
            what += f" with arguments {spec.env.kwargs or spec.env_kwargs}"
    elif ":" in spec.env:
        module = spec.env.split(":")[0]
        what = f"the env {spec.env!r}, whose {module!r} prefix makes Gymnasium import that module"
    else:
        return
    raise UntrustedCheckpointError(
        f"checkpoint {path} names {what}; loading it would import and call code chosen by whoever "
        "wrote the checkpoint. If you trust its source, load it with "
        "Agent.load(path, trust_env_factory=True) (CLI: --trust-env-factory); or supply the env "
        "yourself in Python with Agent.load(path, env=make_env). "
        "See docs/security.md"
    )


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
        source = self._parts.env
        space = source.observation_space
        try:
            observation, single = encode_for_act(source, observation)
            single = single or is_single_observation(observation, space)
            batch = batch_observations([observation], space) if single else self._as_batch(observation)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidObservationError(
                f"cannot read the observation as one of {space} or a batch of them: {exc}"
            ) from exc
        if source.normalizer is not None:
            batch = source.normalizer.normalize_observation(batch)
        actions = self._conform(self._parts.driver.act(batch, deterministic))
        if single:
            action = actions[0]
            return int(action) if space_kind(self._parts.env.action_space) == "discrete" else action
        return actions

    def _as_batch(self, observation: Any) -> Any:
        space = self._parts.env.observation_space
        if isinstance(observation, dict):
            return {k: np.asarray(v) for k, v in observation.items()}
        batch = np.asarray(observation, dtype=space.dtype)
        if batch.shape[1:] != tuple(space.shape or ()):
            raise InvalidObservationError(
                f"observation of shape {np.shape(observation)} fits neither one observation "
                f"{tuple(space.shape or ())} nor a batch (N, {', '.join(map(str, space.shape or ()))})"
            )
        return batch

    def _conform(self, actions: Any) -> np.ndarray:
        space = self._parts.env.action_space
        kind = space_kind(space)
        array: np.ndarray = np.asarray(actions)
        if kind == "box":
            box = cast("Box", space)  # space_kind found a Box
            clipped: np.ndarray = np.clip(array.astype(box.dtype, copy=False), box.low, box.high)
            return clipped.reshape((-1, *box.shape))
        if kind == "discrete":
            return array.astype(np.int64, copy=False).reshape(-1)
        return array.astype(space.dtype, copy=False)

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

        def manifest(files: dict[str, FileEntry]) -> CheckpointManifest:
            return CheckpointManifest(
                polyrl_version=polyrl_version(),
                backend=parts.info.name,
                library=parts.info.library,
                library_version=library_version(parts.info),
                versions=environment_versions(parts.info.library),
                created_at=datetime.now(UTC),
                spec=parts.spec,
                env_steps=self.env_steps,
                iterations=parts.iterations,
                episodes=parts.episodes,
                learning_rate=self.learning_rate,
                preset=parts.preset,
                files=files,
                metadata=dict(metadata or {}),
            )

        return self._timed(
            "driver", "save", lambda: write_checkpoint(Path(path), _native_writer(parts), manifest), str(path)
        )

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
        return cls._from_parts(_load_parts(Path(path), env, backend, trust_env_factory, device))

    def restore(self, path: str | Path) -> None:
        """Put this agent, in place, into the state saved at `path` (weights, optimizer, counters).

        The checkpoint must have been saved from an agent of the same backend; this agent's env
        is kept (no code the checkpoint names is imported). The backend objects this agent held
        are closed. Called from a callback, the run goes on from the restored state.
        `EarlyStopping(restore_best=True)` uses this to go back to the best iteration.
        """
        parts = _load_parts(Path(path), self._parts.spec.env, self._parts.spec.backend, False)
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


def _native_writer(parts: AgentParts) -> Callable[[Path], None]:
    """What a save writes into the native directory: the driver's files, and the normalisation statistics."""

    def write(native: Path) -> None:
        parts.driver.save(native)
        if parts.env.normalizer is not None:
            parts.env.normalizer.save(native)

    return write


def _create(driver_class: type[BackendDriver], spec: AgentSpec, env: EnvSource) -> BackendDriver:
    return driver_class.create(spec, env)


def _load_parts(
    path: Path,
    env: str | Callable[..., Any] | EnvFactorySpec | None,
    backend: str | None,
    trust_env_factory: bool,
    device: str | None = None,
) -> AgentParts:
    """The parts of the agent saved at `path`, built the way a new agent is, then restored."""
    manifest = read_manifest(path)
    if backend is not None and backend.lower() != manifest.backend:
        raise CheckpointBackendMismatchError(
            f"checkpoint {path} was written by backend {manifest.backend!r}, not {backend!r}; "
            f"load it with backend={manifest.backend!r} (or none), or retrain on {backend!r}"
        )
    spec = manifest.spec
    if env is None and not trust_env_factory:
        _refuse_named_code(path, spec)
    if env is not None:
        spec = AgentSpec.model_validate({**spec.model_dump(exclude={"env"}), "env": env})
    if device is not None:
        # Validated by the field's own rule; model_copy keeps a callable env as it is.
        spec = spec.model_copy(update={"device": AgentSpec(device=device).device})

    def load(driver_class: type[BackendDriver], spec: AgentSpec, env: EnvSource) -> BackendDriver:
        return driver_class.load(path / NATIVE_DIR, spec, env)

    parts = build_parts(spec, load, presets=False)
    if manifest.preset is not None:
        parts.preset = manifest.preset  # what the preset filled, as recorded when it was built
    if parts.env.normalizer is not None:
        parts.env.normalizer.load(path / NATIVE_DIR)
    parts.iterations, parts.episodes = manifest.iterations, manifest.episodes
    if abs(parts.driver.get_learning_rate() - manifest.learning_rate) > 1e-12:
        parts.driver.set_learning_rate(manifest.learning_rate)
    return parts
