"""Schedules in the spec are followed: the values the library holds, iteration by iteration.

Proven by a planted bug that fails it (tests/test_conformance.py, the `broken_schedule` backend).
"""

from __future__ import annotations

import pytest

from polyrl_conformance.scenario import AlgorithmScenario
from polyrl_conformance.schedules import SCHEDULE_ITERATIONS, scheduled_run

#: How close a reported value must be to the schedule's (float32 libraries, float64 schedules).
REL, ABS = 1e-5, 1e-9


def test_schedules(scenario: AlgorithmScenario) -> None:
    """With linear schedules in the spec — the learning rate (every backend) and each of
    clip_range, ent_coef and epsilon the algorithm declares as a feature ("schedule.<name>") —
    a run of total_steps = 4 iterations reports in every iteration the schedule's value at the
    progress its iteration started at (steps before it / total_steps): record.learning_rate (read
    from the optimizer) and metrics["clip_range" | "ent_coef" | "epsilon"] (read back from the
    library by get_scheduled), each within rel 1e-5; effective_hyperparameters() holds the last
    rate. A schedulable field of the algorithm that the backend does not declare is refused at
    creation with UnsupportedOptionError. *Catches:* a driver that builds with the schedule's
    start value and never changes it."""
    run = scheduled_run(scenario)
    assert len(run.records) >= SCHEDULE_ITERATIONS - 1, (
        f"a run of {run.total_steps} env steps ({SCHEDULE_ITERATIONS} declared iterations) "
        f"took {len(run.records)} iteration(s)"
    )
    for name, schedule in run.schedules.items():
        expected = [schedule.value_at(run.progress(record)) for record in run.records]
        reported = [run.reported(record, name) for record in run.records]
        assert None not in reported, (
            f"{name} is scheduled but iterations reported {reported}: the driver's get_scheduled "
            f"must read it back from the library (IterationRecord.metrics[{name!r}])"
        )
        held = [round(v, 6) for v in reported if v is not None]
        assert reported == pytest.approx(expected, rel=REL, abs=ABS), (
            f"{name} follows {schedule.model_dump(exclude={'kind'})}: expected per iteration "
            f"{[round(v, 6) for v in expected]}, the library held {held}"
        )
    last = run.schedules["learning_rate"].value_at(run.progress(run.records[-1]))
    assert run.effective_learning_rate == pytest.approx(last, rel=REL), (
        f"after the run the optimizer holds {run.effective_learning_rate}, the schedule's last value "
        f"is {last}"
    )
    wrongly = {name: outcome for name, outcome in run.refused.items() if outcome != "UnsupportedOptionError"}
    assert not wrongly, (
        f"scheduling {sorted(wrongly)} (not declared as features) should be refused with "
        f"UnsupportedOptionError at creation; got {wrongly}"
    )
