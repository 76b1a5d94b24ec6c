"""The run behind the `schedules` check: linear schedules in the spec, followed iteration by iteration.

The learning rate is scheduled on every backend (the core sets it through set_learning_rate);
`clip_range`, `ent_coef` and `epsilon` on the algorithms that declare the feature
"schedule.<name>" (`AlgorithmInfo.features`). The expected value of each iteration is computed
here from the schedule and the records' own step counts, so the check compares values, not
a shape ("it went down").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polyrl import Agent, AgentSpec, TrainConfig
from polyrl.schedules import LinearSchedule

from polyrl_conformance.scenario import ITERATION_CAP

if TYPE_CHECKING:
    from polyrl import IterationRecord

    from polyrl_conformance.scenario import AlgorithmScenario

#: Iterations of the scheduled run (its total_steps is this many declared iterations).
SCHEDULE_ITERATIONS = 4
#: The field each schedule feature schedules, in the algorithm's section.
FEATURE_FIELDS = {
    "schedule.clip_range": "clip_range",
    "schedule.ent_coef": "ent_coef",
    "schedule.epsilon": "epsilon",
}
#: Linear schedules the check uses: none is a library default, each ends far from its start.
SCHEDULES = {
    "clip_range": LinearSchedule(start=0.3, end=0.1),
    "ent_coef": LinearSchedule(start=0.02, end=0.0),
    "epsilon": LinearSchedule(start=0.9, end=0.1),
}
#: What the section's exploration_* fields become when epsilon is scheduled (they exclude it).
_EPSILON_EXCLUDES = ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps")


def learning_rate_schedule(base: float) -> LinearSchedule:
    """The learning-rate schedule: from the suite's rate down to a quarter of it."""
    return LinearSchedule(start=base, end=base / 4)


@dataclass
class ScheduledRun:
    """An agent trained with linear schedules, its records and what the schedules should give."""

    schedules: dict[str, LinearSchedule]
    """By name: "learning_rate" and the declared fields of the algorithm."""
    records: list[IterationRecord]
    total_steps: int
    start_steps: int
    effective_learning_rate: float
    refused: dict[str, str]
    """Schedulable fields of the algorithm's section the backend does not declare: how creating an
    agent that schedules each ended ("UnsupportedOptionError" when refused, as it must be)."""

    def progress(self, record: IterationRecord) -> float:
        """The progress at the start of a record's iteration: steps before it over total_steps."""
        before = record.env_steps - record.iteration_env_steps - self.start_steps
        return min(max(before / self.total_steps, 0.0), 1.0)

    def reported(self, record: IterationRecord, name: str) -> float | None:
        """The value a record reports for `name` (learning_rate: its field; others: metrics)."""
        if name == "learning_rate":
            return record.learning_rate
        return record.metrics.get(name)


def _document(scenario: AlgorithmScenario, fields: dict[str, Any]) -> dict[str, Any]:
    """The case's spec document with `fields` set in the algorithm's section (and the lr schedule)."""
    document = scenario.spec.model_dump(mode="json", exclude_unset=True)
    algorithm = scenario.spec.algorithm
    section = dict(document.get(algorithm) or {})
    if "epsilon" in fields:
        for name in _EPSILON_EXCLUDES:
            section.pop(name, None)
    section.update(fields)
    if section:
        document[algorithm] = section
    return document


def schedulable_fields(spec: AgentSpec) -> list[str]:
    """The schedulable fields of the spec's algorithm section (none for algorithms without one)."""
    section_name = spec.algorithm if spec.algorithm in ("ppo", "a2c", "dqn") else None
    if section_name is None:
        return []
    model = type(spec).model_fields[section_name].annotation
    fields: set[str] = set()
    for candidate in getattr(model, "__args__", (model,)):
        fields |= set(getattr(candidate, "model_fields", {}))
    return [name for name in FEATURE_FIELDS.values() if name in fields]


def scheduled_run(scenario: AlgorithmScenario) -> ScheduledRun:
    """Train an agent with every declared schedule (and the learning rate) for 4 iterations."""
    info = scenario.info.algorithms[scenario.spec.algorithm]
    available = schedulable_fields(scenario.spec)
    declared = [FEATURE_FIELDS[f] for f in info.features if f in FEATURE_FIELDS]
    base = scenario.spec.learning_rate
    rate = base if isinstance(base, float) else 1e-3
    schedules = {"learning_rate": learning_rate_schedule(rate)}
    schedules.update({name: SCHEDULES[name] for name in available if name in declared})
    refused = {name: _creation_outcome(scenario, name) for name in available if name not in declared}
    fields = {name: schedule.model_dump(mode="json") for name, schedule in schedules.items()}
    document = _document(scenario, {k: v for k, v in fields.items() if k != "learning_rate"})
    document["learning_rate"] = fields["learning_rate"]
    agent = scenario.adopt(Agent(AgentSpec.model_validate(document)))
    total = SCHEDULE_ITERATIONS * agent.effective_hyperparameters().iteration_steps
    start = agent.env_steps
    result = agent.train(TrainConfig(total_steps=total, iterations=ITERATION_CAP))
    return ScheduledRun(
        schedules=schedules,
        records=list(result.records),
        total_steps=total,
        start_steps=start,
        effective_learning_rate=agent.effective_hyperparameters().learning_rate,
        refused=refused,
    )


def _creation_outcome(scenario: AlgorithmScenario, name: str) -> str:
    """Build an agent scheduling an undeclared field: the error's class name, or "built"."""
    document = _document(scenario, {name: SCHEDULES[name].model_dump(mode="json")})
    try:
        agent = scenario.adopt(Agent(AgentSpec.model_validate(document)))
    except Exception as exc:
        return type(exc).__name__
    agent.close()
    return "built"
