"""Agents that train side by side on one env and learn from each other's experience.

`cooperate` runs several agents (any backends, any algorithms) in rounds: in each round every
agent still training runs one iteration (its own train() loop, stepped: callbacks, evaluations,
schedules and run directories work as for one agent); then the transitions each one collected
are offered to every other agent that takes external transitions (feature "experience.add":
the off-policy learners), and every `sync_every` rounds a follower copies the parameters of the
agent it follows (same backend, algorithm and network: same parameter names and shapes).

In this process by default; with `address` the agents are Ray actors and their transitions move
through Ray's object store, never through this process (`polyrl.experience.cooperate_ray`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, PositiveInt

from polyrl._model import StrictModel
from polyrl.callbacks.base import Callback
from polyrl.config import TrainConfig
from polyrl.errors import ConfigurationError, ExperienceError
from polyrl.experience.capability import ADD
from polyrl.experience.cooperate_plan import (
    check_agents,
    check_follows,
    check_out,
    check_plan,
    parameter_shapes,
    train_configs,
    write_summary,
)
from polyrl.records import TrainResult

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.experience.batch import TransitionBatch
    from polyrl.spec import AgentSpec


class CooperateConfig(StrictModel):
    """What cooperating agents share, and where they run."""

    share: bool = True
    """Offer every agent's new transitions to every other agent that takes external ones."""
    follow: dict[str, str] = Field(default_factory=dict)
    """Follower name -> leader name: the follower copies the leader's parameters every sync_every rounds."""
    sync_every: PositiveInt = 1
    """Rounds between parameter copies (with `follow`)."""
    until: list[str] = Field(default_factory=list)
    """Agents whose end ends the cooperation (the others stop with them); empty: when all have ended."""
    out: str | None = None
    """A directory: each agent's run directory (run.json, progress.csv, records.jsonl) is OUT/NAME."""
    address: str | None = None
    """None: in this process. "local" (a Ray head started here) or a Ray address: one actor per agent."""


class CooperationResult(StrictModel):
    """What each agent's training returned, and how much experience moved between them."""

    results: dict[str, TrainResult]
    rounds: int
    shared: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Taker name -> giver name -> transitions added to the taker's replay buffer."""
    syncs: int = 0
    """Parameter copies made (each follower counts once per copy)."""


class ExperienceCollector(Callback):
    """A callback that keeps the transitions of the iteration just run, for the exchange."""

    def __init__(self) -> None:
        self.batch: TransitionBatch | None = None

    def on_experience(self, context: Any, batch: TransitionBatch) -> None:
        self.batch = batch

    def take(self) -> TransitionBatch | None:
        """The last iteration's batch (None when there was none), forgotten after this call."""
        batch, self.batch = self.batch, None
        return batch


def ended(config: CooperateConfig, active: Sequence[str]) -> bool:
    """Whether an agent the cooperation runs `until` has stopped (then the others stop too)."""
    return any(name not in active for name in config.until)


def takes_experience(agent: Agent) -> bool:
    """Whether the agent's algorithm declares the feature "experience.add" (an off-policy learner)."""
    return ADD in agent.backend_info.algorithms[agent.spec.algorithm].features


def identity(agent: Agent) -> dict[str, str]:
    """An agent's backend and algorithm, as the cooperation's summary and messages name them."""
    return {"backend": agent.backend, "algorithm": agent.spec.algorithm}


def label(info: Mapping[str, Any]) -> str:
    """The text "backend/algorithm" of an identity (or of a `describe` result)."""
    return f"{info['backend']}/{info['algorithm']}"


def describe(agent: Agent) -> dict[str, Any]:
    """What the exchange checks of an agent: its transition schema and env, whether it
    normalises observations, whether it takes external transitions; and its identity."""
    from polyrl.experience.batch import TransitionSchema
    from polyrl.experience.transfer import normalised

    return {
        **identity(agent),
        "env": agent.env_source.name,
        "schema": TransitionSchema.for_spaces(agent.observation_space, agent.action_space),
        "normalizes": bool(normalised(agent.spec)),
        "takes": takes_experience(agent),
    }


def check_described(described: Mapping[str, dict[str, Any]]) -> None:
    """ExperienceError naming the two agents whose spaces differ (and how), or one that normalises."""
    first, reference = next(iter(described.items()))
    for name, info in described.items():
        differences = reference["schema"].differences(info["schema"])
        if differences:
            how = "; ".join(
                f"{field}: {name!r} has {theirs} where {first!r} has {mine}"
                for field, theirs, mine in differences
            )
            raise ExperienceError(
                f"agents {first!r} (env {reference['env']}) and {name!r} (env {info['env']}) do not see "
                f"the same spaces ({how}), so neither can take the other's transitions: train every "
                "agent on the same env (with the same observation wrappers), or share=False"
            )
        if info["normalizes"]:
            raise ExperienceError(
                f"agent {name!r} normalises observations or rewards, so its transitions are in its own "
                "running scale: train agents that share experience without normalisation (normalize=None)"
            )


def check_follows_here(agents: Mapping[str, Agent], follow: Mapping[str, str]) -> None:
    """ExperienceError, before round 1, for a follower whose parameters differ from its leader's."""
    names = {*follow, *follow.values()}
    check_follows(
        follow,
        {name: parameter_shapes(agents[name].parameters()) for name in names},
        {name: label(identity(agents[name])) for name in names},
    )


def cooperate(
    agents: Mapping[str, Agent | AgentSpec],
    train: TrainConfig | Mapping[str, TrainConfig],
    callbacks: Mapping[str, Sequence[object]] | None = None,
    config: CooperateConfig | None = None,
    **fields: Any,
) -> CooperationResult:
    """Train `agents` (by name) side by side, sharing experience; see the module docstring.

    `train` limits each agent's own training (one TrainConfig for all, or one per name);
    `callbacks` are each agent's own (Keras-style callbacks, by name); `config` (or its fields
    as keywords) says what is shared and where the agents run.
    """
    if config is not None and fields:
        raise ConfigurationError(
            f"give a CooperateConfig or its fields as keywords, not both: {sorted(fields)}"
        )
    config = config if config is not None else CooperateConfig(**fields)
    check_agents(agents)
    names = list(agents)
    check_plan(names, config)
    configs = train_configs(names, train)
    check_out(config.out, names)
    callbacks = dict(callbacks or {})
    if config.address is not None:
        from polyrl.experience.cooperate_ray import cooperate_on_ray

        return cooperate_on_ray(agents, configs, callbacks, config)
    from polyrl.agent import Agent

    built: dict[str, Agent] = {}
    try:
        for name, a in agents.items():
            built[name] = a if isinstance(a, Agent) else Agent(a)
        result = _cooperate_here(built, configs, callbacks, config)
        write_summary(config.out, result, {name: identity(agent) for name, agent in built.items()})
        return result
    finally:  # the agents built here from specs are not the caller's to close
        for name, agent in built.items():
            if agent is not agents[name]:
                agent.close()


def _cooperate_here(
    built: Mapping[str, Agent],
    configs: Mapping[str, TrainConfig],
    callbacks: Mapping[str, Sequence[object]],
    config: CooperateConfig,
) -> CooperationResult:
    """The rounds in this process: the `until` agents step first, so nobody outlives them."""
    names = list(built)
    if config.share:
        check_described({name: describe(agent) for name, agent in built.items()})
    if config.follow:
        check_follows_here(built, config.follow)
    # Collection is on only when transitions move: following alone needs no "experience.collect".
    collectors = {name: ExperienceCollector() for name in names} if config.share else {}
    result = CooperationResult(
        results={}, rounds=0, shared={n: {} for n in names if config.share and takes_experience(built[n])}
    )
    order = [*[n for n in names if n in config.until], *[n for n in names if n not in config.until]]
    with contextlib.ExitStack() as stack:
        loops = {}
        for name in names:
            own = [collectors[name]] if name in collectors else []
            listeners = [*own, *callbacks.get(name, ()), *run_directory_loggers(config.out, name)]
            loops[name] = stack.enter_context(built[name].training(configs[name], listeners))
        active = list(order)
        while active:
            ran = []
            for name in active:
                if loops[name].step() is not None:
                    ran.append(name)
                elif name in config.until:
                    break  # the cooperation ends before anyone else steps again
            if not ran or ended(config, ran):
                for name in active:  # stop() keeps the reason of a loop that ended by itself
                    loops[name].stop(f"cooperation ended: {', '.join(config.until)} stopped")
                break
            active = ran
            result.rounds += 1
            if config.share:
                batches = {name: collectors[name].take() for name in names}
                _exchange(built, batches, active, result.shared)
            if config.follow and result.rounds % config.sync_every == 0:
                for follower, leader in config.follow.items():
                    if follower in active:
                        # Checked before round 1 (check_follows_here): names and shapes do not change.
                        built[follower].load_parameters(built[leader].parameters())
                        result.syncs += 1
    result.results = {name: finished(loops[name].result) for name in names}
    return result


def finished(result: TrainResult | None) -> TrainResult:
    """A loop's result after its `with` block ended normally (set by TrainingLoop.finish)."""
    assert result is not None, "the training loop did not finish"
    return result


def _exchange(
    agents: Mapping[str, Agent],
    batches: Mapping[str, TransitionBatch | None],
    active: Sequence[str],
    shared: dict[str, dict[str, int]],
) -> None:
    """Give every active taker the other agents' batches of this round, in agent order."""
    for taker in active:
        if taker not in shared:
            continue
        for giver, batch in batches.items():
            if giver == taker or batch is None or not len(batch):
                continue
            added = agents[taker].add_experience(batch)
            shared[taker][giver] = shared[taker].get(giver, 0) + added


def run_directory_loggers(out: str | None, name: str) -> list[object]:
    """The file loggers of the agent's run directory OUT/NAME ([] without `out`)."""
    if out is None:
        return []
    from polyrl.callbacks.loggers import run_loggers

    return list(run_loggers(Path(out) / name))
