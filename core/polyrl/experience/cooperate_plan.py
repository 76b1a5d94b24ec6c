"""What `polyrl.cooperate` checks before any agent trains, and the summary it leaves in OUT.

The arguments (agents by name, one TrainConfig or one per name, the CooperateConfig), the run
directories under `out` (never an earlier run's), and, for `follow`, that each follower has its
leader's parameter names and shapes: every mistake here is a typed error before round 1, not
after an hour. At the end, OUT/cooperation.json keeps what the CooperationResult says about the
cooperation as a whole, so it outlives the Python object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.config import TrainConfig
from polyrl.errors import ConfigurationError, ExperienceError

if TYPE_CHECKING:
    from polyrl.experience.cooperate import CooperateConfig, CooperationResult

#: The file under `out` that summarises a cooperation.
SUMMARY_FILE = "cooperation.json"

#: A parameter table as the check sees it: name -> shape.
Shapes = Mapping[str, tuple[int, ...]]


def check_agents(agents: object) -> None:
    """ConfigurationError unless `agents` maps names to Agents or AgentSpecs, each agent once."""
    from polyrl.agent import Agent
    from polyrl.spec import AgentSpec

    if not isinstance(agents, Mapping):
        raise ConfigurationError(
            f"agents must be a mapping name -> Agent or AgentSpec, not {_a(type(agents).__name__)}: "
            'e.g. polyrl.cooperate({"explorer": explorer, "learner": learner}, ...); the names '
            "key the results, the callbacks and `follow`/`until`"
        )
    seen: dict[int, str] = {}
    for name, agent in agents.items():
        if not isinstance(name, str):
            raise ConfigurationError(f"agent names are strings, got {name!r} ({type(name).__name__})")
        if not isinstance(agent, Agent | AgentSpec):
            raise ConfigurationError(
                f"agents[{name!r}] is {_a(type(agent).__name__)}, not an Agent or AgentSpec"
            )
        if isinstance(agent, Agent):
            if id(agent) in seen:
                raise ConfigurationError(
                    f"agents {seen[id(agent)]!r} and {name!r} are the same Agent object: it would train "
                    "twice per round and take its own transitions; give each name an agent of its own "
                    "(another Agent, or an AgentSpec: each spec is built into its own agent)"
                )
            seen[id(agent)] = name


def _a(noun: str) -> str:
    """The noun with its indefinite article ("an int", "a list")."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def check_plan(names: Sequence[str], config: CooperateConfig) -> None:
    """ConfigurationError for fewer than two agents or a follow entry naming an unknown agent."""
    if len(names) < 2:
        raise ConfigurationError(f"cooperate needs at least two agents, got {len(names)}: {list(names)}")
    unknown_until = [name for name in config.until if name not in names]
    if unknown_until:
        raise ConfigurationError(f"until names no agent {unknown_until}; the agents are {list(names)}")
    for follower, leader in config.follow.items():
        unknown = [name for name in (follower, leader) if name not in names]
        if unknown or follower == leader:
            raise ConfigurationError(
                f"follow {{{follower!r}: {leader!r}}}: "
                + (
                    f"no agent named {unknown}; the agents are {list(names)}"
                    if unknown
                    else "an agent cannot follow itself"
                )
            )


def train_configs(names: Sequence[str], train: object) -> dict[str, TrainConfig]:
    """One TrainConfig per agent from `train` (one for all, or a mapping name -> TrainConfig)."""
    if isinstance(train, TrainConfig):
        return {name: train.model_copy() for name in names}
    if not isinstance(train, Mapping):
        raise ConfigurationError(
            f"train must be a TrainConfig or a mapping name -> TrainConfig, not {_a(type(train).__name__)}: "
            "e.g. TrainConfig(iterations=10)"
        )
    wrong = {key: value for key, value in train.items() if not isinstance(value, TrainConfig)}
    if wrong:
        strangers = [key for key in wrong if key not in names]
        hint = ""
        if strangers:
            hint = (
                f" {', '.join(repr(key) for key in strangers)} "
                f"{'is not an agent name' if len(strangers) == 1 else 'are not agent names'} "
                f"(the agents are {list(names)})"
            )
        if strangers and all(key in TrainConfig.model_fields for key in train):
            arguments = ", ".join(f"{key}={value!r}" for key, value in train.items())
            hint += f"; for one limit for every agent pass TrainConfig({arguments})"
        raise ConfigurationError(
            "train must be a TrainConfig or a mapping name -> TrainConfig, but "
            + ", ".join(f"train[{key!r}] is {_a(type(value).__name__)}" for key, value in wrong.items())
            + (f":{hint}" if hint else ": give each as a TrainConfig, e.g. TrainConfig(iterations=10)")
        )
    unknown = [key for key in train if key not in names]
    if unknown:
        raise ConfigurationError(
            f"train has TrainConfigs for {unknown}, which are not agent names; the agents are {list(names)}"
        )
    missing = [name for name in names if name not in train]
    if missing:
        raise ConfigurationError(f"no TrainConfig for agents {missing}; give one per agent or one for all")
    return {name: train[name] for name in names}


def check_out(out: str | None, names: Sequence[str]) -> None:
    """ConfigurationError when OUT/NAME of an agent (or OUT's summary) is there already.

    Each agent's run directory is OUT/NAME: an earlier cooperation's progress.csv there would be
    replaced, and polyrl never deletes what a run wrote. Checked before any agent trains.
    """
    if out is None:
        return
    root = Path(out).expanduser()
    taken = [root / name for name in names if _holds_files(root / name)]
    if (root / SUMMARY_FILE).exists():
        taken.append(root / SUMMARY_FILE)
    if taken:
        raise ConfigurationError(
            f"out={out!r} holds an earlier run's files already ({', '.join(str(p) for p in taken)}), "
            "which this cooperation would replace: choose another directory for out (a new or empty "
            "one); polyrl never deletes what a run wrote"
        )


def _holds_files(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def parameter_shapes(values: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter names -> shapes, for comparing a follower with its leader."""
    return {name: tuple(int(n) for n in value.shape) for name, value in values.items()}


def check_follow(
    follower: str, follower_label: str, mine: Shapes, leader: str, leader_label: str, theirs: Shapes
) -> None:
    """ExperienceError naming both agents when the follower cannot load the leader's parameters."""
    if dict(mine) == dict(theirs):
        return
    only_mine = [name for name in mine if name not in theirs]
    only_theirs = [name for name in theirs if name not in mine]
    details = []
    if only_mine:
        details.append(f"only {follower!r} has {_some(only_mine)}")
    if only_theirs:
        details.append(f"only {leader!r} has {_some(only_theirs)}")
    shaped = [name for name in mine if name in theirs and tuple(mine[name]) != tuple(theirs[name])]
    details += [
        f"{name!r} is {tuple(mine[name])} in {follower!r} and {tuple(theirs[name])} in {leader!r}"
        for name in shaped[:3]
    ]
    raise ExperienceError(
        f"agent {follower!r} ({follower_label}) cannot follow {leader!r} ({leader_label}): their "
        f"parameters' names or shapes differ ({'; '.join(details)}); only agents of one backend, "
        "algorithm and network can follow each other"
    )


def check_follows(follow: Mapping[str, str], shapes: Mapping[str, Shapes], labels: Mapping[str, str]) -> None:
    """`check_follow` for every follower and its leader, from each agent's parameter shapes and
    "backend/algorithm" label: one check before round 1, in this process and on Ray. Parameter
    names and shapes do not change during training, so the copies after it need no check."""
    for follower, leader in follow.items():
        check_follow(follower, labels[follower], shapes[follower], leader, labels[leader], shapes[leader])


def _some(names: list[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def write_summary(
    out: str | None, result: CooperationResult, agents: Mapping[str, Mapping[str, str]]
) -> None:
    """Write OUT/cooperation.json (atomically): rounds, shared, syncs, and each agent's identity
    (`agents`: name -> backend, algorithm) with how its training ended."""
    if out is None:
        return
    from polyrl.files import writable_dir, write_text_atomically

    root = writable_dir(out, "cooperate")
    summary = {
        "rounds": result.rounds,
        "shared": result.shared,
        "syncs": result.syncs,
        "agents": {
            name: {
                **dict(identity),
                "iterations": result.results[name].iterations,
                "env_steps": result.results[name].env_steps,
                "stop_reason": result.results[name].stop_reason,
            }
            for name, identity in agents.items()
        },
    }
    write_text_atomically(root / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


__all__ = [
    "SUMMARY_FILE",
    "check_agents",
    "check_follow",
    "check_follows",
    "check_out",
    "check_plan",
    "parameter_shapes",
    "train_configs",
    "write_summary",
]
