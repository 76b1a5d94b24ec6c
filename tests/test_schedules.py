"""Schedules in the spec: their documents and values, the spec round trip, and the core's loop.

Every run here is on fake NumPy backends (tests/schedule_backend.py); the three libraries'
drivers are checked in test_schedules_backends.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import polyrl
import pytest
import schedule_backend
from polyrl import Agent, AgentSpec, TrainConfig
from polyrl.callbacks import LearningRateScheduler
from polyrl.errors import UnsupportedOptionError
from polyrl.features import used_features
from polyrl.schedules import (
    ConstantSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PiecewiseSchedule,
    initial_value,
    is_scheduled,
    resolved_spec,
    run_progress,
    section_values,
    spec_schedules,
)
from pydantic import ValidationError
from schedule_backend import schedule_agent

# -- the documents and their values -----------------------------------------------------------


def test_linear_is_sb3s_linear_schedule() -> None:
    """SB3's LinearSchedule(start, end, end_fraction) at progress_remaining = 1 - progress."""
    schedule = LinearSchedule(start=1.0, end=0.05, end_fraction=0.1)
    assert [schedule.value_at(p) for p in (0.0, 0.05, 0.1, 0.5, 1.0)] == pytest.approx(
        [1.0, 0.525, 0.05, 0.05, 0.05]
    )
    whole = LinearSchedule(start=3e-4, end=0.0)
    assert [whole.value_at(p) for p in (0.0, 0.25, 1.0)] == pytest.approx([3e-4, 2.25e-4, 0.0])
    assert whole.value_at(-1.0) == 3e-4 and whole.value_at(2.0) == 0.0  # progress is clamped


def test_exponential_piecewise_and_constant_values() -> None:
    exponential = ExponentialSchedule(start=1e-2, end=1e-4)
    assert [exponential.value_at(p) for p in (0.0, 0.5, 1.0)] == pytest.approx([1e-2, 1e-3, 1e-4])
    assert ExponentialSchedule(start=1.0, end=0.01, end_fraction=0.5).value_at(0.25) == pytest.approx(0.1)
    piecewise = PiecewiseSchedule(points=[(0.2, 1.0), (0.6, 0.2), (1.0, 0.1)])
    assert [piecewise.value_at(p) for p in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)] == pytest.approx(
        [1.0, 1.0, 0.6, 0.2, 0.15, 0.1]
    )
    assert PiecewiseSchedule(points=[(0.5, 7.0)]).value_at(0.9) == 7.0
    assert ConstantSchedule(value=0.2).value_at(0.7) == 0.2


def test_rl_zoo3_shorthand_is_rl_zoo3s_simple_linear_schedule() -> None:
    """ "lin_0.001" = rl_zoo3's SimpleLinearSchedule: progress_remaining * 0.001."""
    spec = AgentSpec(algorithm="ppo", learning_rate="lin_7.3e-4", ppo={"clip_range": "lin_0.2"})
    assert spec.learning_rate == LinearSchedule(start=7.3e-4, end=0.0)
    assert spec.ppo is not None and spec.ppo.clip_range == LinearSchedule(start=0.2, end=0.0)
    for progress in (0.0, 0.3, 1.0):
        assert spec.learning_rate.value_at(progress) == pytest.approx((1 - progress) * 7.3e-4)


def test_plain_numbers_stay_numbers_and_constant_schedules_are_not_scheduled() -> None:
    spec = AgentSpec(algorithm="ppo", learning_rate=3e-4, ppo={"clip_range": 0.2, "ent_coef": 0})
    assert spec.learning_rate == 3e-4 and isinstance(spec.learning_rate, float)
    assert spec.model_dump(mode="json", exclude_unset=True)["ppo"] == {"clip_range": 0.2, "ent_coef": 0.0}
    constant = AgentSpec(learning_rate={"kind": "constant", "value": 1e-3})
    assert not is_scheduled(constant.learning_rate) and spec_schedules(constant) == {}
    assert initial_value(constant.learning_rate) == 1e-3 and initial_value(None) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"learning_rate": "lin_fast"}, "is not a schedule"),
        ({"learning_rate": "exp_0.1"}, 'RL Zoo3\'s shorthand "lin_<start>"'),
        ({"learning_rate": {"start": 1e-3, "end": 0}}, 'a schedule needs "kind"'),
        ({"learning_rate": {"kind": "cosine", "start": 1e-3}}, 'a schedule needs "kind"'),
        ({"learning_rate": {"kind": "linear", "start": 1e-3}}, "learning_rate.schedule.linear.end"),
        (
            {"learning_rate": {"kind": "linear", "start": 1e-3, "end": 0, "end_frac": 1}},
            "did you mean 'end_fraction'",
        ),
        ({"learning_rate": {"kind": "linear", "start": 1e-3, "end": -1e-3}}, "must be >= 0"),
        ({"learning_rate": {"kind": "linear", "start": 1, "end": 0, "end_fraction": 0}}, "greater than 0"),
        ({"learning_rate": {"kind": "exponential", "start": 1e-3, "end": 0}}, "greater than 0"),
        ({"learning_rate": {"kind": "piecewise", "points": [[0.5, 1], [0.2, 2]]}}, "strictly increasing"),
        ({"learning_rate": {"kind": "piecewise", "points": [[0, True]]}}, "boolean"),
        ({"learning_rate": {"kind": "linear", "start": True, "end": 0}}, "boolean"),
        ({"learning_rate": {"kind": "linear", "start": float("inf"), "end": 0}}, "finite"),
        ({"learning_rate": 0}, "learning_rate.number"),  # a number must still be > 0
        ({"learning_rate": lambda progress: 1e-3 * progress}, "LearningRateScheduler"),
        ({"algorithm": "dqn", "dqn": {"epsilon": "lin_1.5"}}, "must be [0, 1]"),
        ({"algorithm": "ppo", "ppo": {"ent_coef": {"kind": "constant", "value": -0.1}}}, "must be >= 0"),
    ],
)
def test_bad_schedules_are_refused_with_what_is_wrong(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AgentSpec(**fields)
    assert message in str(caught.value)
    assert len(caught.value.errors()) == 1  # only the branch the value meant (number or schedule)


def test_dqn_epsilon_excludes_the_exploration_fields() -> None:
    with pytest.raises(ValidationError, match="dqn.epsilon and dqn.exploration_fraction are both set"):
        AgentSpec(algorithm="dqn", dqn={"epsilon": 0.1, "exploration_fraction": 0.2})
    spec = AgentSpec(algorithm="dqn", dqn={"epsilon": {"kind": "linear", "start": 1, "end": 0.05}})
    assert spec.dqn is not None and spec.dqn.epsilon == LinearSchedule(start=1.0, end=0.05)


def test_every_existing_form_round_trips_through_json() -> None:
    spec = AgentSpec(
        algorithm="ppo",
        learning_rate="lin_3e-4",
        ppo={
            "clip_range": {"kind": "linear", "start": 0.3, "end": 0.1, "end_fraction": 0.5},
            "ent_coef": {"kind": "piecewise", "points": [[0, 0.01], [0.5, 0.001]]},
        },
    )
    document = json.loads(spec.model_dump_json(exclude_unset=True))
    assert document["learning_rate"] == {"kind": "linear", "start": 3e-4, "end": 0.0}
    assert document["ppo"]["ent_coef"] == {"kind": "piecewise", "points": [[0.0, 0.01], [0.5, 0.001]]}
    assert AgentSpec.model_validate(document) == spec
    assert AgentSpec.model_validate_json(spec.model_dump_json()) == spec


def test_command_line_flags_take_the_shorthand_and_json_documents() -> None:
    from polyrl.cli.app import build_documents

    spec, _ = build_documents(
        None,
        None,
        {},
        [
            "--algo",
            "ppo",
            "--steps",
            "100",
            "--learning-rate",
            "lin_0.001",
            "--ppo.clip-range",
            '{"kind": "exponential", "start": 0.3, "end": 0.1}',
            "--ppo.ent-coef",
            "0.01",
        ],
    )
    assert spec.learning_rate == LinearSchedule(start=0.001, end=0.0)
    assert spec.ppo is not None and spec.ppo.clip_range == ExponentialSchedule(start=0.3, end=0.1)
    assert spec.ppo.ent_coef == 0.01


def test_cli_help_and_tuning_treat_a_schedulable_field_as_a_value() -> None:
    from polyrl.cli.fields import field_flags
    from polyrl.tuning.space import _leaf

    flags = {flag.path: flag for flag in field_flags()}
    assert flags[("learning_rate",)].type == "float|schedule (> 0)"
    assert flags[("dqn", "epsilon")].type == "float|schedule (>= 0, <= 1)"
    assert _leaf("learning_rate", "ppo") is not None  # searchable as a number, not a "section"
    assert _leaf("ppo.clip_range", "ppo") is not None


def test_drivers_get_start_values_and_features_name_what_is_scheduled() -> None:
    spec = AgentSpec(
        algorithm="ppo",
        learning_rate="lin_1e-3",
        ppo={"clip_range": {"kind": "linear", "start": 0.3, "end": 0.1}, "ent_coef": 0.01, "n_epochs": 3},
    )
    plain = resolved_spec(spec)
    assert plain.learning_rate == 1e-3 and plain.ppo is not None and plain.ppo.clip_range == 0.3
    assert section_values(spec.ppo) == {"n_epochs": 3, "clip_range": 0.3, "ent_coef": 0.01}
    assert set(spec_schedules(spec)) == {"learning_rate", "clip_range"}
    assert [f for f in used_features(spec) if f.startswith("schedule.")] == ["schedule.clip_range"]
    assert resolved_spec(AgentSpec(learning_rate=1e-3)) == AgentSpec(learning_rate=1e-3)


def test_progress_is_steps_of_the_planned_run_else_time_else_zero() -> None:
    assert run_progress(100, 150, 300, elapsed=99.0, time_limit=1.0) == 0.25
    assert run_progress(100, 400, 300, elapsed=0.0, time_limit=None) == 1.0
    assert run_progress(0, 50, None, elapsed=2.0, time_limit=8.0) == 0.25
    assert run_progress(0, 50, None, elapsed=2.0, time_limit=None) == 0.0


# -- the core's loop ----------------------------------------------------------------------------


@pytest.fixture
def sched() -> Iterator[None]:
    plugin = schedule_backend.SchedulePlugin()
    polyrl.registry().register(plugin, name="schedule-plugin")
    schedule_backend.CALLS.clear()
    schedule_backend.BUILT.clear()
    try:
        yield
    finally:
        polyrl.registry().unregister(plugin)


def test_the_core_sets_every_schedule_before_each_iteration_and_reports_what_is_held(sched: None) -> None:
    agent = schedule_agent(
        learning_rate={"kind": "linear", "start": 0.4, "end": 0.0},
        ppo={"clip_range": "lin_0.2", "ent_coef": {"kind": "exponential", "start": 0.01, "end": 0.0001}},
    )
    (built,) = schedule_backend.BUILT
    assert built.learning_rate == 0.4 and built.ppo is not None and built.ppo.clip_range == 0.2
    result = agent.train(TrainConfig(total_steps=200))
    assert [r.learning_rate for r in result.records] == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert [r.metrics["clip_range"] for r in result.records] == pytest.approx([0.2, 0.15, 0.1, 0.05])
    assert [r.metrics["ent_coef"] for r in result.records] == pytest.approx(
        [0.01, 0.01 * 0.01**0.25, 0.001, 0.01 * 0.01**0.75]
    )
    assert schedule_backend.CALLS[:2] == [("clip_range", 0.2), ("ent_coef", 0.01)]
    assert agent.spec.learning_rate == LinearSchedule(start=0.4, end=0.0)  # the agent keeps the schedule


def test_progress_follows_an_iterations_budget_and_restarts_with_each_train_call(sched: None) -> None:
    agent = schedule_agent(algorithm="dqn", dqn={"epsilon": {"kind": "linear", "start": 1.0, "end": 0.0}})
    first = agent.train(TrainConfig(iterations=4))
    assert [r.metrics["epsilon"] for r in first.records] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    second = agent.train(TrainConfig(iterations=2))  # a new call: the schedule starts over
    assert [r.metrics["epsilon"] for r in second.records] == pytest.approx([1.0, 0.5])


def test_a_learning_rate_callback_runs_after_the_spec_schedule_and_wins(sched: None) -> None:
    agent = schedule_agent(learning_rate="lin_0.4")
    seen: list[float] = []

    class Spy(polyrl.Callback):
        def on_iteration_begin(self, context, iteration):
            seen.append(context.learning_rate)  # the spec schedule's value is already set here

    result = agent.train(
        TrainConfig(total_steps=150),
        callbacks=[Spy(), LearningRateScheduler(lambda iteration: 0.5 if iteration == 2 else 0.05)],
    )
    # Iteration 1: the schedule's 0.4, then the callback's 0.05 wins; from then on the callback
    # (a hand on the learning rate) owns it and the core no longer sets the spec's values.
    assert seen == pytest.approx([0.4, 0.05, 0.5])
    assert [r.learning_rate for r in result.records] == pytest.approx([0.05, 0.5, 0.05])


def test_a_learning_rate_set_by_hand_stops_the_spec_schedule_for_that_agent(sched: None) -> None:
    agent = schedule_agent(learning_rate="lin_0.4")
    assert [r.learning_rate for r in agent.train(TrainConfig(total_steps=100)).records] == [0.4, 0.2]
    agent.learning_rate = 0.01  # e.g. after ReduceLROnPlateau, or by the user between calls
    assert [r.learning_rate for r in agent.train(TrainConfig(total_steps=100)).records] == [0.01, 0.01]
    assert agent.spec.learning_rate == LinearSchedule(start=0.4, end=0.0)  # the spec is unchanged


def test_scheduling_an_undeclared_value_is_refused_before_the_driver_is_built(sched: None) -> None:
    with pytest.raises(UnsupportedOptionError, match=r"schedule.ent_coef.*sched/ppo") as caught:
        schedule_agent(algorithm="a2c", a2c={"ent_coef": "lin_0.01"})
    assert "a2c" in str(caught.value) and not schedule_backend.BUILT
    schedule_agent(algorithm="a2c", a2c={"ent_coef": 0.01}).close()  # a number works everywhere
    schedule_agent(algorithm="a2c", a2c={"ent_coef": {"kind": "constant", "value": 0.01}}).close()


def test_a_driver_declaring_a_feature_without_set_scheduled_fails_with_what_to_implement(sched: None) -> None:
    agent = schedule_agent(backend="nosched", ppo={"clip_range": "lin_0.2"})
    with pytest.raises(UnsupportedOptionError, match="must implement set_scheduled and get_scheduled"):
        agent.train(TrainConfig(iterations=1))


def test_a_learning_rate_schedule_needs_no_feature(fake_backend: str) -> None:
    agent = Agent(
        backend=fake_backend, algorithm="linear", env="CartPole-v1", seed=0, preset="none",
        iteration_steps=10, learning_rate={"kind": "piecewise", "points": [[0, 0.1], [0.5, 0.3]]},
    )  # fmt: skip
    result = agent.train(TrainConfig(total_steps=40))
    assert [r.learning_rate for r in result.records] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert all("clip_range" not in r.metrics for r in result.records)
