"""Agent: the one object a user trains, plays, evaluates, saves, loads and acts with."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrl.callbacks.context import RunContext
from polyrl.callbacks.dispatch import CallbackDispatcher
from polyrl.checkpoint import read_manifest, write_checkpoint
from polyrl.config import PlayConfig, TrainConfig
from polyrl.envs import EnvSource, batch_observations, is_single_observation, space_kind
from polyrl.errors import (
    CheckpointBackendMismatchError,
    ConfigurationError,
    InvalidObservationError,
    UnknownAlgorithmError,
    UnsupportedSpaceError,
    UntrustedCheckpointError,
)
from polyrl.manifest import NATIVE_DIR, CheckpointManifest, FileEntry
from polyrl.playing import run_play
from polyrl.plugins import ensure_installed, library_version, registry
from polyrl.spec import AgentSpec, EnvFactorySpec
from polyrl.training import run_training
from polyrl.versions import environment_versions, polyrl_version

if TYPE_CHECKING:
    from polyrl.backend import BackendDriver, BackendInfo, EffectiveHyperparameters
    from polyrl.records import IterationReport, PlayResult, TrainResult


def _check_algorithm(info: BackendInfo, spec: AgentSpec) -> None:
    if spec.algorithm not in info.algorithms:
        raise UnknownAlgorithmError(
            f"backend {info.name!r} has no algorithm {spec.algorithm!r}; it provides "
            f"{sorted(info.algorithms)}"
        )


def _check_spaces(info: BackendInfo, spec: AgentSpec, env: EnvSource) -> None:
    _check_algorithm(info, spec)
    algorithm = info.algorithms[spec.algorithm]
    action_kind = space_kind(env.action_space)
    observation_kind = space_kind(env.observation_space)
    if action_kind not in algorithm.action_spaces:
        fitting = sorted(n for n, a in info.algorithms.items() if action_kind in a.action_spaces)
        raise UnsupportedSpaceError(
            f"{info.name}/{spec.algorithm} cannot handle the {action_kind} action space of "
            f"{env.name} ({env.action_space}); it handles {algorithm.action_spaces}. Algorithms "
            f"of {info.name!r} for this env: {fitting}"
        )
    if observation_kind not in algorithm.observation_spaces:
        raise UnsupportedSpaceError(
            f"{info.name}/{spec.algorithm} cannot handle the {observation_kind} observation "
            f"space of {env.name} ({env.observation_space}); it handles "
            f"{algorithm.observation_spaces}"
        )


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
        spec = _spec_from(spec, fields)
        info = registry().backend(spec.backend)
        _check_algorithm(info, spec)
        ensure_installed(info)
        env = EnvSource.from_spec(spec)
        _check_spaces(info, spec, env)
        driver = registry().driver_class(spec.backend).create(spec, env)
        self._attach(spec, info, env, driver)

    def _attach(self, spec: AgentSpec, info: BackendInfo, env: EnvSource, driver: BackendDriver) -> None:
        self._spec = spec
        self._info = info
        self._env = env
        self._driver = driver
        self._iterations = 0
        self._episodes = 0
        self._dispatcher: CallbackDispatcher | None = None

    # -- what the agent is -------------------------------------------------------------------
    @property
    def spec(self) -> AgentSpec:
        """The spec this agent was built from (a copy; changing it changes nothing)."""
        return self._spec.model_copy(deep=True)

    @property
    def backend(self) -> BackendInfo:
        """The BackendInfo of this agent's backend."""
        return self._info

    @property
    def env_source(self) -> EnvSource:
        """Builds fresh environments of this agent's spec."""
        return self._env

    @property
    def observation_space(self) -> Any:
        """The environment's observation space."""
        return self._env.observation_space

    @property
    def action_space(self) -> Any:
        """The environment's action space."""
        return self._env.action_space

    @property
    def env_steps(self) -> int:
        """Env steps collected in training over the agent's life (continues after load)."""
        return self._driver.env_steps

    @property
    def iterations(self) -> int:
        """Training iterations over the agent's life (continues after load)."""
        return self._iterations

    @property
    def episodes(self) -> int:
        """Training episodes completed over the agent's life (continues after load)."""
        return self._episodes

    @property
    def learning_rate(self) -> float:
        """The learning rate the backend's optimizer uses now; settable."""
        return self._driver.get_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        # 0 is allowed here (it freezes the policy for a while); a spec's learning rate is > 0.
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf"):
            raise ConfigurationError(f"learning_rate must be a finite number >= 0, got {value!r}")
        self._timed(
            "driver", "set_learning_rate", lambda: self._driver.set_learning_rate(float(value)), f"{value:g}"
        )

    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable parameters (what the optimizers update) as NumPy copies, by name."""
        return self._driver.parameters()

    @property
    def replay_size(self) -> int | None:
        """Transitions in the replay buffer (off-policy algorithms); None when there is none."""
        return self._driver.replay_size()

    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """The hyperparameters the native library object holds, in common and native names."""
        return self._driver.effective_hyperparameters()

    @property
    def native(self) -> Any:
        """The wrapped library object (e.g. the SB3 model), to reach past polyrl."""
        return self._driver.native()

    # -- running -----------------------------------------------------------------------------
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
        if config is not None and fields:
            raise ConfigurationError("pass either a TrainConfig or keyword fields, not both")
        config = config if config is not None else TrainConfig(**fields)
        context = RunContext(self, config.model_copy(), "train")
        dispatcher = CallbackDispatcher(list(callbacks), registry().lifecycle_plugins())
        self._dispatcher = dispatcher
        try:
            return run_training(self, context, dispatcher)
        finally:
            self._dispatcher = None

    def play(
        self,
        config: PlayConfig | None = None,
        callbacks: Sequence[object] = (),
        **fields: Any,
    ) -> PlayResult:
        """Play episodes in a fresh env (deterministic by default) and return their statistics."""
        if config is not None and fields:
            raise ConfigurationError("pass either a PlayConfig or keyword fields, not both")
        config = config if config is not None else PlayConfig(**fields)
        context = RunContext(self, config.model_copy(), "play")
        dispatcher = CallbackDispatcher(list(callbacks), registry().lifecycle_plugins())
        outer = self._dispatcher
        self._dispatcher = dispatcher
        try:
            return run_play(self, context, dispatcher)
        finally:
            self._dispatcher = outer

    def evaluate(
        self,
        episodes: int = 10,
        max_steps: int | None = None,
        seed: int | None = None,
        callbacks: Sequence[object] = (),
    ) -> PlayResult:
        """Deterministic play of `episodes` episodes: the policy's greedy performance."""
        config = PlayConfig(episodes=episodes, max_steps=max_steps, seed=seed, deterministic=True)
        return self.play(config, callbacks=callbacks)

    def act(self, observation: Any, deterministic: bool = True) -> Any:
        """The action for one observation, or actions for a batch (leading axis = batch).

        A single Discrete action comes back as an int; Box actions as arrays of the space's
        dtype and shape, clipped into its bounds.
        """
        space = self._env.observation_space
        try:
            single = is_single_observation(observation, space)
            batch = batch_observations([observation], space) if single else self._as_batch(observation)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidObservationError(
                f"cannot read the observation as one of {space} or a batch of them: {exc}"
            ) from exc
        actions = self._conform(self._driver.act(batch, deterministic))
        if single:
            action = actions[0]
            return int(action) if space_kind(self._env.action_space) == "discrete" else action
        return actions

    def _as_batch(self, observation: Any) -> Any:
        space = self._env.observation_space
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
        space = self._env.action_space
        kind = space_kind(space)
        actions = np.asarray(actions)
        if kind == "box":
            actions = np.clip(actions.astype(space.dtype, copy=False), space.low, space.high)
            return actions.reshape((-1, *space.shape))
        if kind == "discrete":
            return actions.astype(np.int64, copy=False).reshape(-1)
        return actions.astype(space.dtype, copy=False)

    def _run_driver_iteration(self) -> IterationReport:
        report = self._timed("driver", "train_iteration", self._driver.train_iteration, "")
        self._iterations += 1
        self._episodes += len(report.episodes)
        return report

    def _timed(self, target: str, method: str, fn: Callable[[], Any], summary: str) -> Any:
        dispatcher = self._dispatcher
        if dispatcher is None or not dispatcher.wants("on_api_call"):
            return fn()
        began = time.perf_counter()
        value = fn()
        dispatcher.call(
            "on_api_call",
            context=None,
            target=target,
            method=method,
            seconds=time.perf_counter() - began,
            summary=summary,
        )
        return value

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> CheckpointManifest:
        """Write a checkpoint directory (manifest + native files) atomically; return its manifest.

        A crash mid-save leaves any previous checkpoint at `path` intact.
        """

        def manifest(files: dict[str, FileEntry]) -> CheckpointManifest:
            return CheckpointManifest(
                polyrl_version=polyrl_version(),
                backend=self._info.name,
                library=self._info.library,
                library_version=library_version(self._info),
                versions=environment_versions(self._info.library),
                created_at=datetime.now(UTC),
                spec=self._spec,
                env_steps=self.env_steps,
                iterations=self._iterations,
                episodes=self._episodes,
                learning_rate=self.learning_rate,
                files=files,
                metadata=dict(metadata or {}),
            )

        return self._timed(
            "driver", "save", lambda: write_checkpoint(Path(path), self._driver.save, manifest), str(path)
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: str | Callable[..., Any] | EnvFactorySpec | None = None,
        backend: str | None = None,
        *,
        trust_env_factory: bool = False,
    ) -> Agent:
        """Rebuild an agent from a checkpoint directory; training continues where it stopped.

        `env` replaces the saved env (needed when it was a callable that cannot be imported);
        `backend`, if given, must match the checkpoint's backend. A checkpoint whose env is a
        factory ("module:function", or a Gymnasium id with a "module:" prefix) names code that
        loading would import and call: that needs `env=` (you supply the env) or
        `trust_env_factory=True` (you trust whoever wrote the checkpoint), else
        UntrustedCheckpointError. See docs/security.md.
        """
        path = Path(path)
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
        info = registry().backend(spec.backend)
        ensure_installed(info)
        env_source = EnvSource.from_spec(spec)
        _check_spaces(info, spec, env_source)
        driver = registry().driver_class(spec.backend).load(path / NATIVE_DIR, spec, env_source)
        agent = cls.__new__(cls)
        agent._attach(spec, info, env_source, driver)
        agent._iterations = manifest.iterations
        agent._episodes = manifest.episodes
        if abs(driver.get_learning_rate() - manifest.learning_rate) > 1e-12:
            driver.set_learning_rate(manifest.learning_rate)
        return agent

    def close(self) -> None:
        """Release the backend's envs and processes."""
        self._driver.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Agent(backend={self._spec.backend!r}, algorithm={self._spec.algorithm!r}, "
            f"env={self._env.name!r}, env_steps={self.env_steps}, iterations={self._iterations})"
        )
