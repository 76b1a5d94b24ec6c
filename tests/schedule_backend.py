"""Fake backends for the schedule tests: the NumPy fake driver under PPO's and DQN's names.

`sched` declares the schedule features and keeps what the core sets (its "library" values);
`nosched` declares them but never implemented set_scheduled (the BackendDriver default).
`schedule_agent` builds the schedule tests' agents, on these backends or the libraries'.
"""

from __future__ import annotations

from typing import Any

import polyrl
from fake_backend import FakeDriver
from polyrl import Agent, AgentSpec
from polyrl.backend import AlgorithmInfo, BackendInfo, EnvSource

#: Every (name, value) the scheduling driver received, in order, with the iteration it was for.
CALLS: list[tuple[str, float]] = []
#: The specs the drivers were built with (what the core handed them).
BUILT: list[AgentSpec] = []


class SchedulingDriver(FakeDriver):
    """The fake driver holding a clip range, an entropy coefficient and an epsilon it is told."""

    def __init__(self, spec: AgentSpec, env: EnvSource) -> None:
        super().__init__(spec, env)
        BUILT.append(spec)
        section: Any = spec.section()
        self.held = {
            name: float(getattr(section, name))
            for name in ("clip_range", "ent_coef", "epsilon")
            if section is not None and isinstance(getattr(section, name, None), float)
        }

    def set_scheduled(self, name: str, value: float) -> None:
        CALLS.append((name, value))
        self.held[name] = value

    def get_scheduled(self, name: str) -> float | None:
        return self.held.get(name)


class NotSchedulingDriver(FakeDriver):
    """Declares the features but kept BackendDriver's set_scheduled (which refuses)."""


def _info(name: str, driver: str) -> BackendInfo:
    return BackendInfo(
        name=name,
        description="test backend with schedule features",
        driver=f"schedule_backend:{driver}",
        library="numpy",
        requires=["numpy"],
        install_hint="numpy",
        algorithms={
            "ppo": AlgorithmInfo(
                action_spaces=["discrete", "box"],
                on_policy=True,
                features=["schedule.clip_range", "schedule.ent_coef"],
            ),
            "a2c": AlgorithmInfo(action_spaces=["discrete", "box"], on_policy=True),
            "dqn": AlgorithmInfo(action_spaces=["discrete"], on_policy=False, features=["schedule.epsilon"]),
        },
    )


class SchedulePlugin:
    """Declares `sched` and `nosched`."""

    @polyrl.backend.hookimpl
    def polyrl_backends(self) -> list[BackendInfo]:
        return [_info("sched", "SchedulingDriver"), _info("nosched", "NotSchedulingDriver")]


def schedule_agent(
    backend: str = "sched", algorithm: str = "ppo", iteration_steps: int = 50, **fields: object
) -> Agent:
    """A CartPole agent with seed 0 and no preset, so its schedules are only the ones in fields."""
    return Agent(
        backend=backend,
        algorithm=algorithm,
        env="CartPole-v1",
        seed=0,
        preset="none",
        iteration_steps=iteration_steps,
        **fields,
    )
