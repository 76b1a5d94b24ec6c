"""What stands between an Agent and its loops: the agent's parts, and one run over them.

`AgentParts` is everything an agent is made of (spec, backend, env source, driver, counters);
`Agent.__init__`, `Agent.load` and `Agent.restore` all build one through `build_parts`. A `Run`
is one train() or play() call: it owns the callback list and times the calls the loops make
to the driver and the env, so the loops never reach into the Agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from polyrl.envs import EnvSource, SpaceKind, space_kind
from polyrl.errors import UnknownAlgorithmError, UnsupportedSpaceError
from polyrl.exploration import check_action_space
from polyrl.features import check_features
from polyrl.plugins import ensure_installed, registry
from polyrl.schedules import resolved_spec

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.backend import BackendDriver, BackendInfo
    from polyrl.callbacks.callback_list import CallbackList
    from polyrl.presets import PresetChoice
    from polyrl.records import DriverReport
    from polyrl.spec import AgentSpec

T = TypeVar("T")

#: How a driver comes to be: `create` for a new agent, `load` of a checkpoint's native files.
DriverFactory = Callable[["type[BackendDriver]", "AgentSpec", EnvSource], "BackendDriver"]


@dataclass
class AgentParts:
    """The parts of one agent; its counters are the core's (the driver owns env_steps)."""

    spec: AgentSpec
    info: BackendInfo
    env: EnvSource
    driver: BackendDriver
    iterations: int = 0
    episodes: int = 0
    preset: PresetChoice | None = None
    learning_rate_by_hand: bool = False
    """Set through Agent.learning_rate (by the user or a callback): the spec's schedule stops."""


def check_algorithm(info: BackendInfo, spec: AgentSpec) -> None:
    """UnknownAlgorithmError unless the backend declares the spec's algorithm."""
    if spec.algorithm not in info.algorithms:
        raise UnknownAlgorithmError(
            f"backend {info.name!r} has no algorithm {spec.algorithm!r}; it provides "
            f"{sorted(info.algorithms)}"
        )


def observation_kind(env: EnvSource) -> SpaceKind:
    """The kind a backend must declare for the env's (encoded) observations: "image" or "box"."""
    from polyrl.observations.images import image_layout

    return "image" if image_layout(env.observation_space) is not None else space_kind(env.observation_space)


def _takers(kind: SpaceKind, attribute: str) -> list[str]:
    """ "backend/algorithm" of every installed algorithm that declares `kind` in `attribute`."""
    return sorted(
        f"{name}/{algorithm}"
        for name, info in registry().backends().items()
        for algorithm, declared in info.algorithms.items()
        if kind in getattr(declared, attribute)
    )


def check_spaces(info: BackendInfo, spec: AgentSpec, env: EnvSource) -> None:
    """UnsupportedSpaceError unless the algorithm declares the env's action and observation spaces.

    The message names the installed backends and algorithms that do take the space, and the
    wrapper that would make it fit this one.
    """
    check_algorithm(info, spec)
    algorithm = info.algorithms[spec.algorithm]
    action_kind = space_kind(env.action_space)
    obs_kind = observation_kind(env)
    if action_kind not in algorithm.action_spaces:
        takers = _takers(action_kind, "action_spaces")
        raise UnsupportedSpaceError(
            f"{info.name}/{spec.algorithm} cannot handle the {action_kind} action space of "
            f"{env.name} ({env.action_space}); it handles {algorithm.action_spaces}. Installed "
            f"backend/algorithms that take {action_kind} actions: {takers or 'none'}"
        )
    if obs_kind not in algorithm.observation_spaces:
        takers = _takers(obs_kind, "observation_spaces")
        advice = ' Or add the "flatten" wrapper (an MLP on the raw pixels).' if obs_kind == "image" else ""
        raise UnsupportedSpaceError(
            f"{info.name}/{spec.algorithm} cannot handle the {obs_kind} observations of {env.name} "
            f"({env.observation_space}); it handles {algorithm.observation_spaces}. Installed "
            f"backend/algorithms that take {obs_kind} observations: {takers or 'none'}.{advice}"
        )
    if obs_kind == "image":
        from polyrl.observations.network import resolve_network

        resolve_network(spec.network, env.observation_space)  # too small for the conv layers: refused now


def build_parts(spec: AgentSpec, make_driver: DriverFactory, *, presets: bool = True) -> AgentParts:
    """Check the spec against its backend and env (before any backend library loads), build the driver.

    With `presets` (a new agent), the spec's preset fills the fields left unset first, so the
    driver sees the settings it trains with, and the spec's `prefill` dataset goes into the new
    driver's replay buffer; a loaded agent's spec is already resolved (and its buffer saved).
    """
    from polyrl.presets import apply_preset, recorded_preset

    info = registry().backend(spec.backend)
    check_algorithm(info, spec)
    ensure_installed(info)
    env = EnvSource.from_spec(spec)
    if presets:
        features = info.algorithms[spec.algorithm].features
        spec, choice = apply_preset(spec, observation_kind(env), space_kind(env.action_space), features)
        if choice is not None:
            env = EnvSource.from_spec(spec)  # a preset may set wrappers, normalisation or gamma
    else:
        choice = recorded_preset(spec)
    check_spaces(info, spec, env)
    check_features(info, spec)
    check_action_space(spec, space_kind(env.action_space))
    # The driver builds with each schedule's start value; the core sets them per iteration (training).
    driver = make_driver(registry().driver_class(spec.backend), resolved_spec(spec), env)
    parts = AgentParts(spec, info, env, driver, preset=choice)
    if presets and spec.prefill is not None:
        # A new agent only: a loaded one's checkpoint holds its buffer, prefilled rows included.
        from polyrl.experience.transfer import apply_prefill

        try:
            apply_prefill(parts)
        except BaseException:
            driver.close()
            raise
    return parts


class Run:
    """One train() or play() call of an agent: its parts, its callbacks, the timing of its calls.

    `agent` is the public Agent (what callbacks see through the context); `parts` is what the
    loops drive. Calls reported to `on_api_call` go through `timed`.
    """

    def __init__(self, agent: Agent, parts: AgentParts, callbacks: CallbackList) -> None:
        self.agent = agent
        self.parts = parts
        self.callbacks = callbacks
        self.reports_calls = callbacks.wants("on_api_call")

    def timed(self, target: str, method: str, fn: Callable[[], T], summary: str = "") -> T:
        """Call `fn`, reporting it to on_api_call as `target.method` when anyone listens."""
        if not self.reports_calls:
            return fn()
        began = time.perf_counter()
        value = fn()
        self.callbacks.call(
            "on_api_call",
            context=None,
            target=target,
            method=method,
            seconds=time.perf_counter() - began,
            summary=summary,
        )
        return value

    def train_iteration(self, horizon: int | None) -> DriverReport:
        """One driver iteration toward the run's planned end; the core's counters follow it."""
        parts = self.parts
        parts.driver.set_horizon(horizon)
        report = self.timed("driver", "train_iteration", parts.driver.train_iteration)
        normalizer = parts.env.normalizer
        if normalizer is not None and normalizer.returns is not None:
            # The library saw scaled rewards; the returns a user reads are the env's own.
            report = report.model_copy(update={"episodes": normalizer.drain_episodes()})
        parts.iterations += 1
        parts.episodes += len(report.episodes)
        return report
