"""The runs the checks inspect, computed lazily and shared by every check of one case.

The checks are assertions over a few small runs (an agent trained with a hook recorder, a
twin trained with the same seed that stops early and changes its learning rate, a checkpoint
and the agent loaded from it, ...). Each run happens at most once per case, the first time a
check needs it, so the suite's cost is a handful of tiny trainings per backend x algorithm
and a failing run shows up in exactly the checks that depend on it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polyrl
from polyrl import Agent, Callback, PlayConfig, TrainConfig
from polyrl.schedules import initial_value

from polyrl_conformance.cases import Case, make_env, make_spec

if TYPE_CHECKING:
    from polyrl import CheckpointManifest, PlayResult, TrainResult
    from polyrl.backend import BackendInfo

T = TypeVar("T")

#: Fixed numbers of the behaviour runs (they check API behaviour, not learning).
OBSERVATION_BATCH = 8
OBSERVATION_SEED = 1234
ITERATION_CAP = 20  # a guard: a driver that reports no steps must not loop forever
PLAY_EPISODES = 3
PLAY_MAX_STEPS = 10
PLAY_SEED = 11
EVALUATE_EPISODES = 2
EVALUATE_SEED = 5
STOP_REASON = "conformance: stop flag set in on_iteration_end"
LEARNING_RATE_FACTOR = 0.25


class EarlierFailure(RuntimeError):
    """A shared run failed when another check needed it first; this names it."""


def once(method: Callable[..., T]) -> Callable[..., T]:
    """Run a scenario step at most once; later calls get its value, or its failure again."""

    @functools.wraps(method)
    def wrapper(self: Any) -> T:
        memo: dict[str, tuple[bool, Any]] = self.__dict__.setdefault("_memo", {})
        if method.__name__ in memo:
            ok, value = memo[method.__name__]
            if ok:
                return value
            raise EarlierFailure(
                f"the shared step {method.__name__}() failed: {type(value).__name__}: {value}"
            ) from value
        try:
            value = method(self)
        except Exception as exc:
            memo[method.__name__] = (False, exc)
            raise
        memo[method.__name__] = (True, value)
        return value

    return wrapper


class HookRecorder(Callback):
    """Records the name of every lifecycle hook called, in order, and what play steps saw."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.rewards: list[list[float]] = []

    def on_train_begin(self, context: Any) -> None:
        self.calls.append("on_train_begin")

    def on_train_end(self, context: Any, result: Any) -> None:
        self.calls.append("on_train_end")

    def on_iteration_begin(self, context: Any, iteration: int) -> None:
        self.calls.append("on_iteration_begin")

    def on_iteration_end(self, context: Any, record: Any) -> None:
        self.calls.append("on_iteration_end")

    def on_play_begin(self, context: Any) -> None:
        self.calls.append("on_play_begin")

    def on_play_end(self, context: Any, result: Any) -> None:
        self.calls.append("on_play_end")

    def on_episode_begin(self, context: Any, index: int) -> None:
        self.calls.append("on_episode_begin")
        self.rewards.append([])

    def on_episode_end(self, context: Any, episode: Any) -> None:
        self.calls.append("on_episode_end")

    def on_step_begin(self, context: Any, observation: Any) -> None:
        self.calls.append("on_step_begin")

    def on_step_end(self, context: Any, step: Any) -> None:
        self.calls.append("on_step_end")
        self.rewards[-1].append(float(step.reward))


class StopAndChangeLearningRate(Callback):
    """At the first on_iteration_end: set a new learning rate, read it back, set the stop flag.

    A failure to set the learning rate is kept (for the learning-rate check) rather than
    raised, so the stop-flag check does not depend on it.
    """

    def __init__(self, new_learning_rate: float) -> None:
        self.new_learning_rate = new_learning_rate
        self.read_back: float | None = None
        self.error: BaseException | None = None
        self.fired = False

    def on_iteration_end(self, context: Any, record: Any) -> None:
        """Change the learning rate and ask to stop, once."""
        if self.fired:
            return
        self.fired = True
        try:
            context.learning_rate = self.new_learning_rate
            self.read_back = context.learning_rate
        except Exception as exc:  # reported by the learning-rate check
            self.error = exc
        context.stop(STOP_REASON)


def sample_observations(case: Case, count: int = OBSERVATION_BATCH) -> tuple[list[Any], Any]:
    """`count` observations the env really produces (seeded random play) and them as a batch."""
    from polyrl.envs import batch_observations

    env = make_env(case.env)
    try:
        env.action_space.seed(OBSERVATION_SEED)
        observation, _ = env.reset(seed=OBSERVATION_SEED)
        singles = [observation]
        while len(singles) < count:
            observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                observation, _ = env.reset()
            singles.append(observation)
        return singles, batch_observations(singles, env.observation_space)
    finally:
        env.close()


def actions_equal(a: Any, b: Any, atol: float = 1e-6) -> bool:
    """Same actions: exactly for integers, within `atol` for floats."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(b.dtype, np.floating):
        return bool(np.allclose(a, b, rtol=0.0, atol=atol))
    return bool(np.array_equal(a, b))


def finite(value: Any) -> bool:
    """A real, finite number (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TrainRun:
    """An agent and what happened while it trained."""

    agent: Agent
    result: TrainResult
    calls: list[str]
    config: TrainConfig
    iteration_steps: int


@dataclass
class TwinRun:
    """The same-seed twin: stopped by a callback after one iteration, then trained one more."""

    agent: Agent
    result: TrainResult
    calls: list[str]
    changer: StopAndChangeLearningRate
    after: TrainResult | None
    after_error: BaseException | None
    effective_learning_rate: float | None


@dataclass
class PlayRun:
    """One play() call with a hook recorder."""

    config: PlayConfig
    result: PlayResult
    calls: list[str]
    rewards: list[list[float]]


@dataclass(frozen=True)
class AgentState:
    """What save/load must keep: deterministic actions on the fixed batch, counters, learning rate."""

    actions: Any
    env_steps: int
    iterations: int
    episodes: int
    learning_rate: float

    @classmethod
    def of(cls, agent: Agent, batch: Any) -> AgentState:
        """The agent's state now (its actions on `batch` first, before anything else touches it)."""
        return cls(
            actions=agent.act(batch, deterministic=True),
            env_steps=agent.env_steps,
            iterations=agent.iterations,
            episodes=agent.episodes,
            learning_rate=agent.learning_rate,
        )

    def counters(self) -> dict[str, int]:
        """env_steps, iterations and episodes by name."""
        return {"env_steps": self.env_steps, "iterations": self.iterations, "episodes": self.episodes}


@dataclass
class Checkpoint:
    """A saved agent: where, its manifest, and the saver's state."""

    path: Path
    manifest: CheckpointManifest
    state: AgentState


@dataclass
class Reloaded:
    """The agent loaded from the checkpoint, with its state right after load."""

    agent: Agent
    state: AgentState


class EnvScenario:
    """One backend x algorithm x env: an untrained agent and a fixed set of observations."""

    def __init__(self, info: BackendInfo, case: Case) -> None:
        self.info = info
        self.case = case
        self.spec = make_spec(info, case)
        self._agents: list[Agent] = []

    def build(self) -> Agent:
        """A new agent of this case's spec (closed with the scenario)."""
        return self.adopt(Agent(self.spec))

    def adopt(self, agent: Agent) -> Agent:
        """Close `agent` with the scenario; return it."""
        self._agents.append(agent)
        return agent

    @once
    def agent(self) -> Agent:
        """The untrained agent the act checks use."""
        return self.build()

    @once
    def observations(self) -> tuple[list[Any], Any]:
        """Fixed observations (singles, batch) from seeded random play in the env."""
        return sample_observations(self.case)

    def close(self) -> None:
        """Close every agent this scenario built."""
        for agent in self._agents:
            # A close failure must not hide the checks' results.
            with contextlib.suppress(Exception):
                agent.close()
        self._agents.clear()


class AlgorithmScenario(EnvScenario):
    """One backend x algorithm on its first fitting env: the runs of the behaviour checks."""

    def __init__(self, info: BackendInfo, case: Case, workdir: Path) -> None:
        super().__init__(info, case)
        self.workdir = workdir

    def _train_config(self, iteration_steps: int) -> TrainConfig:
        # Not a multiple of the iteration size: the run needs two iterations and overshoots.
        total = iteration_steps + iteration_steps // 2 + 1
        return TrainConfig(total_steps=total, iterations=ITERATION_CAP)

    @once
    def trained(self) -> TrainRun:
        """A fresh agent trained for 1.5 iterations' worth of steps, with a hook recorder."""
        agent = self.build()
        iteration_steps = agent.effective_hyperparameters().iteration_steps
        config = self._train_config(iteration_steps)
        recorder = HookRecorder()
        result = agent.train(config, callbacks=[recorder])
        return TrainRun(agent, result, list(recorder.calls), config, iteration_steps)

    @once
    def twin(self) -> TwinRun:
        """Same spec and seed as `trained`; its callback changes the lr and stops after iteration 1."""
        agent = self.build()
        # The same config as `trained` (derived the same way, so this run does not need it).
        config = self._train_config(agent.effective_hyperparameters().iteration_steps)
        recorder = HookRecorder()
        changer = StopAndChangeLearningRate(self.new_learning_rate())
        result = agent.train(config, callbacks=[recorder, changer])
        after, after_error, effective = None, None, None
        if changer.error is None:
            try:
                after = agent.train(TrainConfig(iterations=1))
                effective = agent.effective_hyperparameters().learning_rate
            except Exception as exc:  # reported by the learning-rate check
                after_error = exc
        return TwinRun(agent, result, list(recorder.calls), changer, after, after_error, effective)

    def new_learning_rate(self) -> float:
        """The learning rate the twin's callback sets: a quarter of the spec's."""
        spec_rate = initial_value(self.spec.learning_rate)
        base = spec_rate if spec_rate is not None else 1e-3
        return base * LEARNING_RATE_FACTOR

    @once
    def played(self) -> PlayRun:
        """The trained agent plays 3 episodes capped at 10 steps, with a hook recorder."""
        agent = self.trained().agent
        config = PlayConfig(episodes=PLAY_EPISODES, max_steps=PLAY_MAX_STEPS, seed=PLAY_SEED)
        recorder = HookRecorder()
        result = agent.play(config, callbacks=[recorder])
        return PlayRun(config, result, list(recorder.calls), recorder.rewards)

    @once
    def checkpoint(self) -> Checkpoint:
        """The trained agent saved to a fresh directory."""
        agent = self.trained().agent
        path = self.workdir / "checkpoint"
        manifest = agent.save(path)
        _, batch = self.observations()
        return Checkpoint(path=path, manifest=manifest, state=AgentState.of(agent, batch))

    @once
    def reloaded(self) -> Reloaded:
        """The checkpoint loaded back, and its deterministic actions before anything else."""
        # The suite wrote this checkpoint itself, with its own env factory: trusted.
        agent = Agent.load(self.checkpoint().path, trust_env_factory=True)
        self._agents.append(agent)
        _, batch = self.observations()
        return Reloaded(agent=agent, state=AgentState.of(agent, batch))

    @once
    def resumed(self) -> TrainResult:
        """The loaded agent trained one more iteration."""
        agent = self.reloaded().agent
        return agent.train(TrainConfig(iterations=1))

    def damaged_copy(self, name: str, damage: Callable[[Path], None]) -> Path:
        """A copy of the checkpoint with `damage` applied to it."""
        source = self.checkpoint().path
        target = self.workdir / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        damage(target)
        return target


@dataclass
class DriverSpy:
    """Counts calls of a driver classmethod (create or load) while a check runs."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)


def spy_on_driver(monkeypatch: Any, backend: str, method: str) -> DriverSpy:
    """Wrap `method` of the backend's driver class so the check can see whether it ran."""
    driver_class = polyrl.registry().driver_class(backend)
    original = getattr(driver_class, method)
    spy = DriverSpy()

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        spy.calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(driver_class, method, wrapped)
    return spy
