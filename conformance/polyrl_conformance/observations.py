"""The runs behind the observation checks: the suite's env as an image, a Discrete cell and a Dict,
the spec's device, and normalisation.

Every run takes the case's spec (the suite's fields and the backend's tiny overrides) and changes
only what it checks: the suite's own env in one observation kind (with the algorithm's action
kind), the device, or normalize. So every algorithm a backend advertises is checked, at the cost
of one or two tiny agents per check.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from polyrl import Agent, AgentSpec, Callback

from polyrl_conformance.cases import space_kinds
from polyrl_conformance.envs import CUSTOM_FACTORY, EPISODE_LOGS, make_custom_env
from polyrl_conformance.scenario import OBSERVATION_BATCH, OBSERVATION_SEED

if TYPE_CHECKING:
    from polyrl import IterationRecord

    from polyrl_conformance.scenario import AlgorithmScenario

#: The custom conv stack of the image check (polyrl's default for 12x12 is one 16x3x3 layer).
IMAGE_CONV = [[8, 3, 1], [8, 3, 1]]
#: A device no CI machine has: creation must fail with DeviceUnavailableError.
UNAVAILABLE_DEVICE = "cuda:7"
NORMALIZE = {"observations": True, "rewards": True}
#: The normalize run trains this many iterations, then one at a time until an episode ended.
NORMALIZE_ITERATIONS, EPISODE_CAP = 2, 8

_log_names = itertools.count()


class ObservationRuns:
    """Specs, agents and checkpoints of the observation checks of one backend x algorithm."""

    def __init__(self, scenario: AlgorithmScenario) -> None:
        self.scenario = scenario
        self._saved = itertools.count()

    @property
    def action_kind(self) -> str:
        """The action kind of the case's env ("discrete" or "box"), so the algorithm takes it."""
        kind = space_kinds(self.scenario.case.env)[1]
        assert kind in ("discrete", "box"), f"the case's env has {kind} actions; the suite's env has none"
        return kind

    @property
    def declared_observations(self) -> list[str]:
        """The observation kinds the algorithm declares."""
        return list(self.scenario.info.algorithms[self.scenario.case.algorithm].observation_spaces)

    def spec(
        self, observation: str | None = None, env_kwargs: dict[str, Any] | None = None, **updates: Any
    ) -> AgentSpec:
        """The case's spec on the suite's env in `observation` kind (None: the case's env), with `updates`."""
        document = self.scenario.spec.model_dump(mode="json", exclude_unset=True)
        if observation is not None:
            kwargs = {"action": self.action_kind, "observation": observation, **(env_kwargs or {})}
            document.update(env={"factory": CUSTOM_FACTORY, "kwargs": kwargs})
        document.update(updates)
        return type(self.scenario.spec).model_validate(document)

    def image_spec(self, conv: list[list[int]] | None = None) -> AgentSpec:
        """The case's spec on the image env; with `conv`, the case's network with those conv layers."""
        if conv is None:
            return self.spec("image")
        network = dict(self.scenario.spec.model_dump(mode="json", exclude_unset=True).get("network") or {})
        return self.spec("image", network={**network, "conv": conv})

    def build(self, spec: AgentSpec) -> Agent:
        """A new agent of `spec`, closed with the scenario."""
        return self.scenario.adopt(Agent(spec))

    def reload(self, agent: Agent) -> tuple[Path, Agent]:
        """Save `agent` to a fresh directory and load it back: (the checkpoint's path, the loaded agent)."""
        path = self.scenario.workdir / f"observations-{next(self._saved)}"
        agent.save(path)
        # The suite wrote this checkpoint itself, with its own env factory: trusted.
        return path, self.scenario.adopt(Agent.load(path, trust_env_factory=True))


def raw_observations(action: str, observation: str, count: int = OBSERVATION_BATCH) -> tuple[Any, list[Any]]:
    """The suite env's observation space and its first observations after `count` seeded resets,
    exactly as the env returns them (an int, a dict, a uint8 image): what a user hands to act().

    Each reset draws a new start and goal, so the observations differ (random play barely moves
    the point in a few steps).
    """
    # The factory types its kinds as Literals; these strings are checked by the env itself.
    env = make_custom_env(action=action, observation=observation)  # type: ignore[arg-type]
    try:
        found = [env.reset(seed=OBSERVATION_SEED + i)[0] for i in range(count)]
        return env.observation_space, found
    finally:
        env.close()


def act_in_space(agent: Agent, singles: list[Any], batch: Any, what: str) -> np.ndarray:
    """act() on each observation alone and on the batch, deterministic and stochastic; every action
    must be in the action space. Returns the deterministic batch actions."""
    space = agent.action_space
    kept: np.ndarray | None = None
    for deterministic in (True, False):
        for index, observation in enumerate(singles):
            action = agent.act(observation, deterministic=deterministic)
            assert space.contains(action), (
                f"act({what} #{index}, deterministic={deterministic}) returned {action!r}, not in {space}"
            )
        actions = agent.act(batch, deterministic=deterministic)
        assert len(actions) == len(singles), f"a batch of {len(singles)} {what}s gave {len(actions)} actions"
        outside = [(i, a) for i, a in enumerate(actions) if not space.contains(a)]
        assert not outside, f"batch actions on {what}s outside {space}: {outside[:3]}"
        if deterministic:
            kept = np.asarray(actions)
    assert kept is not None
    return kept


def train_one(agent: Agent, what: str) -> IterationRecord:
    """One training iteration on `what` observations; it must collect env steps.

    A failure names the usual cause: the core encodes observations in the envs EnvSource.make()
    builds, so a driver that builds its envs another way gets raw ones its network does not take.
    """
    from polyrl import TrainConfig

    try:
        record = agent.train(TrainConfig(iterations=1)).records[0]
    except Exception as exc:
        raise AssertionError(
            f"training on {what} observations raised {type(exc).__name__}: {exc}. The driver sees them "
            f"as {agent.observation_space}: does it build its training envs with EnvSource.make()?"
        ) from exc
    assert record.iteration_env_steps > 0, "a training iteration collected no env steps"
    return record


class EpisodeLogWatcher(Callback):
    """Pairs every iteration record with the episodes the env logged during that iteration."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = 0
        self.iterations: list[tuple[IterationRecord, list[tuple[float, int]]]] = []

    def on_iteration_begin(self, context: Any, iteration: int) -> None:
        self.start = len(EPISODE_LOGS.get(self.name, []))

    def on_iteration_end(self, context: Any, record: Any) -> None:
        self.iterations.append((record, list(EPISODE_LOGS.get(self.name, [])[self.start :])))


@dataclass
class NormalizedRun:
    """The normalize check's agent, what its iterations reported next to what the env paid out."""

    agent: Agent
    iterations: list[tuple[IterationRecord, list[tuple[float, int]]]]


def normalized_run(runs: ObservationRuns) -> NormalizedRun:
    """An agent with normalize on (the suite's Box env, logging its raw episodes) trained
    NORMALIZE_ITERATIONS iterations, then on until an episode ended (at most EPISODE_CAP)."""
    from polyrl import TrainConfig

    name = f"{runs.scenario.case.id}-normalize-{next(_log_names)}"
    EPISODE_LOGS.pop(name, None)
    agent = runs.build(runs.spec("box", env_kwargs={"episode_log": name}, normalize=NORMALIZE))
    watcher = EpisodeLogWatcher(name)
    agent.train(TrainConfig(iterations=NORMALIZE_ITERATIONS), callbacks=[watcher])
    while not EPISODE_LOGS.get(name) and len(watcher.iterations) < EPISODE_CAP:
        agent.train(TrainConfig(iterations=1), callbacks=[watcher])
    return NormalizedRun(agent, watcher.iterations)
