"""Cooperation on a Ray cluster: one actor per agent, transitions through Ray's object store.

Each round, every active actor runs one iteration and returns two objects: whether it is still
training (fetched here) and its new transitions (left in the object store: only their
references pass through this process, and each taker's actor fetches the batch itself). Actors
build their agents from specs, so agents must be given as AgentSpecs; with `out`, each actor
writes its run directory and, at the end, a checkpoint in OUT/NAME/checkpoint (the cluster's
nodes must see OUT: one machine or a shared file system).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.errors import ConfigurationError
from polyrl.records import TrainResult

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.config import TrainConfig
    from polyrl.experience.batch import TransitionBatch
    from polyrl.experience.cooperate import CooperateConfig, CooperationResult
    from polyrl.spec import AgentSpec

CONNECT_TIMEOUT = 30.0


class CooperatingAgent:
    """One agent's stepped training inside a Ray actor (see the module docstring)."""

    def __init__(
        self,
        name: str,
        spec: AgentSpec,
        train: TrainConfig,
        callbacks: Sequence[object],
        out: str | None,
        share: bool,
    ) -> None:
        from polyrl.agent import Agent
        from polyrl.experience.cooperate import ExperienceCollector, run_directory_loggers

        self.name, self.out = name, out
        self.agent = Agent(spec)
        self.collector = ExperienceCollector()
        self.stack = contextlib.ExitStack()
        loggers = run_directory_loggers(out, name)
        # Collection is on only when transitions move: following alone needs no "experience.collect".
        own = [self.collector] if share else []
        self.loop = self.stack.enter_context(self.agent.training(train, [*own, *callbacks, *loggers]))

    def describe(self) -> dict[str, Any]:
        """Spaces, normalisation and capability, checked by the driver process before round 1."""
        from polyrl.experience.cooperate import describe

        return describe(self.agent)

    def step(self) -> tuple[bool, TransitionBatch | None]:
        """One iteration: (still training?, its transitions)."""
        running = self.loop.step() is not None
        return running, self.collector.take()

    def add(self, batch: TransitionBatch | None) -> int:
        """Put another agent's batch into this agent's replay buffer; rows added."""
        return 0 if batch is None or not len(batch) else self.agent.add_experience(batch)

    def parameters(self) -> dict[str, Any]:
        """The agent's trainable parameters."""
        return self.agent.parameters()

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The parameters' names and shapes (what a follower and its leader must share)."""
        from polyrl.experience.cooperate_plan import parameter_shapes

        return parameter_shapes(self.agent.parameters())

    def follow(self, values: Any) -> None:
        """Load a leader's parameters (`values`, resolved from the object store); their names and
        shapes were checked before the first step (`_check_follows`)."""
        self.agent.load_parameters(values)

    def stop(self, reason: str) -> None:
        """End this agent's training at the next step (the cooperation ended)."""
        self.loop.stop(reason)

    def finish(self) -> str:
        """End the training (on_train_end), save the checkpoint under OUT, return the result JSON."""
        from polyrl.experience.cooperate import finished

        self.stack.close()
        if self.out is not None:
            self.agent.save(Path(self.out) / self.name / "checkpoint")
        self.agent.close()
        return finished(self.loop.result).model_dump_json()


def _connect(address: str) -> Any:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigurationError("cooperating on Ray needs ray: pip install 'polyrl[rllib]' (or ray)")
    import ray

    if address == "local":
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        return ray
    from polyrl.experiments.executors import ensure_ray

    ensure_ray(address, CONNECT_TIMEOUT, "cooperation")
    return ray


def cooperate_on_ray(
    agents: Mapping[str, Agent | AgentSpec],
    configs: Mapping[str, TrainConfig],
    callbacks: Mapping[str, Sequence[object]],
    config: CooperateConfig,
) -> CooperationResult:
    """`polyrl.cooperate` with one Ray actor per agent (see the module docstring)."""
    from polyrl.experience.cooperate import CooperationResult, check_described, ended
    from polyrl.experience.cooperate_plan import write_summary
    from polyrl.spec import AgentSpec

    not_specs = [name for name, agent in agents.items() if not isinstance(agent, AgentSpec)]
    if not_specs:
        raise ConfigurationError(
            f"on Ray, agents are built inside their actors: give AgentSpecs, not Agents ({not_specs})"
        )
    assert config.address is not None
    ray = _connect(config.address)
    remote = ray.remote(num_cpus=0)(CooperatingAgent)
    actors = {
        name: remote.remote(
            name, spec, configs[name], list(callbacks.get(name, ())), config.out, config.share
        )
        for name, spec in agents.items()
    }
    try:
        described = dict(zip(actors, ray.get([a.describe.remote() for a in actors.values()]), strict=True))
        if config.share:
            check_described(described)
        if config.follow:
            _check_follows(actors, described, config.follow, ray)
        result = CooperationResult(
            results={}, rounds=0, shared={n: {} for n, d in described.items() if config.share and d["takes"]}
        )
        active = list(actors)
        while active:
            stepped = {name: actors[name].step.options(num_returns=2).remote() for name in active}
            running = dict(zip(stepped, ray.get([refs[0] for refs in stepped.values()]), strict=True))
            active = [name for name in active if running[name]]
            if not active or ended(config, active):
                reason = f"cooperation ended: {', '.join(config.until)} stopped"
                ray.get([actors[name].stop.remote(reason) for name in active])
                break
            result.rounds += 1
            if config.share:
                _exchange(
                    actors, {name: refs[1] for name, refs in stepped.items()}, active, result.shared, ray
                )
            if config.follow and result.rounds % config.sync_every == 0:
                follows = [
                    actors[follower].follow.remote(actors[leader].parameters.remote())
                    for follower, leader in config.follow.items()
                    if follower in active
                ]
                ray.get(follows)
                result.syncs += len(follows)
        finished = ray.get([actor.finish.remote() for actor in actors.values()])
        result.results = {
            name: TrainResult.model_validate_json(text) for name, text in zip(actors, finished, strict=True)
        }
        identities = {
            name: {k: info[k] for k in ("backend", "algorithm")} for name, info in described.items()
        }
        write_summary(config.out, result, identities)
        return result
    finally:
        for actor in actors.values():
            with contextlib.suppress(Exception):
                ray.kill(actor)


def _check_follows(
    actors: Mapping[str, Any], described: Mapping[str, Any], follow: Mapping[str, str], ray: Any
) -> None:
    """ExperienceError, before the first step, for a follower whose parameters differ from its leader's."""
    from polyrl.experience.cooperate import label
    from polyrl.experience.cooperate_plan import check_follows

    names = sorted({*follow, *follow.values()})
    shapes = dict(zip(names, ray.get([actors[n].parameter_shapes.remote() for n in names]), strict=True))
    check_follows(follow, shapes, {name: label(described[name]) for name in names})


def _exchange(
    actors: Mapping[str, Any],
    batches: Mapping[str, Any],
    active: Sequence[str],
    shared: dict[str, dict[str, int]],
    ray: Any,
) -> None:
    """Every active taker adds the other agents' batch references (resolved in its own actor)."""
    pending = []
    for taker in active:
        if taker not in shared:
            continue
        for giver, ref in batches.items():
            if giver != taker:
                pending.append((taker, giver, actors[taker].add.remote(ref)))
    for (taker, giver, _), added in zip(pending, ray.get([p[2] for p in pending]), strict=True):
        if added:
            shared[taker][giver] = shared[taker].get(giver, 0) + added
