"""BrokenScheduleDriver: a backend that declares schedules and ignores them.

The CEM driver, declared (`polyrl_broken.SCHEDULE_BACKEND`) as algorithm "ppo" with the features
"schedule.clip_range" and "schedule.ent_coef". It builds with each schedule's start value (what
the core hands a driver) and then drops every value the core sets per iteration: its "library"
keeps the start value for the whole run. The `schedules` conformance check fails it; every other
check passes (it is CEM, which needs neither value).
"""

from __future__ import annotations

from polyrl import AgentSpec
from polyrl.backend import EnvSource
from polyrl.schedules import initial_value
from polyrl_numpy_cem.driver import CemDriver


class BrokenScheduleDriver(CemDriver):
    """CEM holding a clip range and an entropy coefficient it never updates."""

    def __init__(self, spec: AgentSpec, env: EnvSource) -> None:
        super().__init__(spec, env)
        section = spec.ppo
        clip = initial_value(section.clip_range) if section is not None else None
        ent_coef = initial_value(section.ent_coef) if section is not None else None
        self.clip_range = clip if clip is not None else 0.2
        self.ent_coef = ent_coef if ent_coef is not None else 0.0

    def set_scheduled(self, name: str, value: float) -> None:
        """The bug: the value is accepted and dropped; the start value stays for the whole run."""

    def get_scheduled(self, name: str) -> float | None:
        """What this "library" holds: still the values it was built with."""
        return {"clip_range": self.clip_range, "ent_coef": self.ent_coef}.get(name)
