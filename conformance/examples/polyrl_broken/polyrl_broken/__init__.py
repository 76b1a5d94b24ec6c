"""A deliberately broken example backend ("broken"): the conformance suite must catch it."""

from __future__ import annotations

from polyrl.backend import AlgorithmInfo, BackendInfo, hookimpl
from polyrl_numpy_cem import BACKEND as CEM

BACKEND = CEM.model_copy(
    update={
        "name": "broken",
        "description": "Example: CEM with two protocol violations (see polyrl_broken.driver)",
        "driver": "polyrl_broken.driver:BrokenDriver",
        "install_hint": "polyrl-broken",
    }
)


#: CEM declaring clip-range and entropy schedules it ignores (polyrl_broken.schedule).
SCHEDULE_BACKEND = BackendInfo(
    **{
        **CEM.model_dump(),
        "name": "broken_schedule",
        "description": "Example: CEM declaring clip-range and entropy schedules it ignores",
        "driver": "polyrl_broken.schedule:BrokenScheduleDriver",
        "install_hint": "polyrl-broken",
        "algorithms": {
            "ppo": AlgorithmInfo(
                observation_spaces=["box"],
                action_spaces=["discrete", "box"],
                on_policy=True,
                description="CEM under PPO's name, for its schedulable fields",
                features=["schedule.clip_range", "schedule.ent_coef"],
            )
        },
        "conformance_overrides": {"ppo": CEM.conformance_overrides["cem"]},
    }
)


@hookimpl
def polyrl_backends():
    """Declare the broken backends: "broken" and "broken_schedule" (see polyrl_broken.schedule)."""
    return [BACKEND, SCHEDULE_BACKEND]
