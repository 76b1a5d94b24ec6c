"""Schedules: a hyperparameter that changes over a train() call, written in the spec as JSON.

A schedulable spec field (`learning_rate`, `ppo.clip_range`, `ppo.ent_coef`, `a2c.ent_coef`,
`dqn.epsilon`) takes a plain number (constant) or one of these documents:

- `{"kind": "constant", "value": v}`;
- `{"kind": "linear", "start": a, "end": b, "end_fraction": f}`: from a to b over the first
  fraction f of the run (default 1.0), then b: SB3's `LinearSchedule` (its DQN epsilon);
- `{"kind": "exponential", "start": a, "end": b, "end_fraction": f}`: the same, geometrically
  (a * (b / a) ** (progress / f)); both values above 0;
- `{"kind": "piecewise", "points": [[p0, v0], [p1, v1], ...]}`: linear between (progress, value)
  points, constant before the first and after the last;
- RL Zoo3's shorthand `"lin_0.001"`: linear from 0.001 to 0 over the whole run (rl_zoo3's
  `SimpleLinearSchedule`, `progress_remaining * initial_value`).

Progress is the fraction of the current train() call's planned env steps already collected
(0.0 at its first iteration, SB3's convention: the value at progress 0 is `start`). The core sets
each scheduled value before every iteration (`polyrl.training`), so every backend follows the
same schedule, at iteration granularity; nothing here imports a backend library.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from polyrl._model import SpecModel

if TYPE_CHECKING:
    from polyrl.spec import AgentSpec

#: The names of the scheduled values, as IterationRecord.metrics reports them (learning_rate
#: has its own record field) and as BackendDriver.set_scheduled receives them.
SCHEDULED_NAMES = ("learning_rate", "clip_range", "ent_coef", "epsilon")

#: RL Zoo3's string shorthand: "lin_<start>" (a linear schedule from start to 0).
SHORTHAND = re.compile(r"^lin_(?P<start>[-+0-9.eE]+)$")


class ConstantSchedule(SpecModel):
    """The same value for the whole run (what a plain number in the spec means)."""

    kind: Literal["constant"] = "constant"
    value: float
    """The value."""

    def value_at(self, progress: float) -> float:
        """The value at `progress` (always `value`)."""
        return self.value

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the schedule takes."""
        return self.value, self.value


class LinearSchedule(SpecModel):
    """From `start` to `end` linearly over the first `end_fraction` of the run, then `end`."""

    kind: Literal["linear"] = "linear"
    start: float
    """The value at progress 0."""
    end: float
    """The value from progress `end_fraction` on."""
    end_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    """The fraction of the run after which the value stays at `end`."""

    def value_at(self, progress: float) -> float:
        """start + (end - start) * min(progress / end_fraction, 1), as SB3's LinearSchedule."""
        done = min(_clamp(progress) / self.end_fraction, 1.0)
        return self.start + (self.end - self.start) * done

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the schedule takes."""
        return min(self.start, self.end), max(self.start, self.end)


class ExponentialSchedule(SpecModel):
    """From `start` to `end` geometrically over the first `end_fraction` of the run, then `end`."""

    kind: Literal["exponential"] = "exponential"
    start: Annotated[float, Field(gt=0)]
    """The value at progress 0 (above 0)."""
    end: Annotated[float, Field(gt=0)]
    """The value from progress `end_fraction` on (above 0)."""
    end_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    """The fraction of the run after which the value stays at `end`."""

    def value_at(self, progress: float) -> float:
        """start * (end / start) ** min(progress / end_fraction, 1)."""
        done = min(_clamp(progress) / self.end_fraction, 1.0)
        return float(self.start * (self.end / self.start) ** done)

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the schedule takes."""
        return min(self.start, self.end), max(self.start, self.end)


ProgressFloat = Annotated[float, Field(ge=0, le=1)]


class PiecewiseSchedule(SpecModel):
    """Linear between (progress, value) points; the first value before them, the last after."""

    kind: Literal["piecewise"] = "piecewise"
    points: list[tuple[ProgressFloat, float]] = Field(min_length=1, max_length=1000)
    """[[progress, value], ...] with progress in [0, 1], strictly increasing."""

    @field_validator("points", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        # pydantic reads True as 1.0 inside tuples, where SpecModel's own check does not reach.
        if isinstance(value, list | tuple) and any(
            isinstance(item, bool) for point in value if isinstance(point, list | tuple) for item in point
        ):
            raise ValueError(f"expected [progress, value] numbers, got a boolean in {list(value)}")
        return value

    @model_validator(mode="after")
    def _increasing(self) -> PiecewiseSchedule:
        progress = [p for p, _ in self.points]
        if any(b <= a for a, b in itertools.pairwise(progress)):
            raise ValueError(
                f"piecewise points must have strictly increasing progress, got {progress}; "
                "sort them, one value per progress"
            )
        return self

    def value_at(self, progress: float) -> float:
        """The value interpolated linearly between the points around `progress`."""
        x = _clamp(progress)
        (first_x, first_y), (last_x, last_y) = self.points[0], self.points[-1]
        if x <= first_x:
            return first_y
        if x >= last_x:
            return last_y
        for (x0, y0), (x1, y1) in itertools.pairwise(self.points):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return last_y  # not reached: x < last_x

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the schedule takes."""
        values = [v for _, v in self.points]
        return min(values), max(values)


def _clamp(progress: float) -> float:
    return min(max(float(progress), 0.0), 1.0)


KINDS = ("constant", "linear", "exponential", "piecewise")


def _schedule_kind(value: object) -> object:
    # A callable discriminator (as polyrl.exploration's): SpecModel's before-validators on every
    # field rule out pydantic's inferred one, and a tagged union reports only the chosen kind's errors.
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


Schedule = Annotated[
    Annotated[ConstantSchedule, Tag("constant")]
    | Annotated[LinearSchedule, Tag("linear")]
    | Annotated[ExponentialSchedule, Tag("exponential")]
    | Annotated[PiecewiseSchedule, Tag("piecewise")],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_kind",
        custom_error_message=(
            'a schedule needs "kind": "constant", "linear", "exponential" or "piecewise" '
            '(or RL Zoo3\'s shorthand "lin_<start>")'
        ),
    ),
]
"""One schedule document, told apart by its "kind"."""

SCHEDULE_TYPES = (ConstantSchedule, LinearSchedule, ExponentialSchedule, PiecewiseSchedule)
AnySchedule = ConstantSchedule | LinearSchedule | ExponentialSchedule | PiecewiseSchedule


def is_schedule_model(annotation: object) -> bool:
    """Whether `annotation` is one of the schedule classes (a value, not a spec section)."""
    return isinstance(annotation, type) and issubclass(annotation, SCHEDULE_TYPES)


def parse_shorthand(value: Any) -> Any:
    """RL Zoo3's "lin_0.001" as a linear schedule document; anything else unchanged.

    Other strings are refused with the forms a schedule takes; a Python function is refused
    with where a function schedule belongs (a spec is JSON: it cannot hold code).
    """
    if isinstance(value, str):
        match = SHORTHAND.match(value.strip())
        start = _finite(match.group("start")) if match else None
        if start is None:
            raise ValueError(
                f'{value!r} is not a schedule: write a number, RL Zoo3\'s shorthand "lin_<start>" '
                '(e.g. "lin_0.001": linear from 0.001 to 0), or a document such as '
                '{"kind": "linear", "start": 0.001, "end": 0.0}'
            )
        return {"kind": "linear", "start": start, "end": 0.0}
    if callable(value) and not isinstance(value, type) and not hasattr(value, "value_at"):
        raise ValueError(
            "a function cannot be saved in a spec (it is JSON); write the schedule as a document "
            '({"kind": "linear", "start": a, "end": b}), or pass the function to the '
            "LearningRateScheduler callback"
        )
    return value


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _values_within(low: float, high: float | None) -> Callable[[Any], Any]:
    """An after-validator: a schedule's values stay in [low, high] (numbers have their own bounds)."""

    def check(value: Any) -> Any:
        if isinstance(value, SCHEDULE_TYPES):
            smallest, largest = value.bounds()
            if smallest < low or (high is not None and largest > high):
                limit = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
                raise ValueError(
                    f"the schedule's values must be {limit}, but it goes from {smallest:g} to {largest:g}"
                )
        return value

    return check


def _number_or_schedule(value: object) -> str:
    # Which branch validates: only its errors are reported ("should be greater than 0" for a
    # number, the schedule's own for a document), not both branches' at once.
    return "schedule" if isinstance(value, (dict, *SCHEDULE_TYPES)) else "number"


# The spec's schedulable field types: the number as before, or a schedule whose values obey the
# field's bound (a schedule may reach 0, as RL Zoo3's "lin_" ones do, where a number must not).
ScheduledPositive = Annotated[
    Annotated[Annotated[float, Field(gt=0)], Tag("number")] | Annotated[Schedule, Tag("schedule")],
    Discriminator(_number_or_schedule),
    BeforeValidator(parse_shorthand),
    AfterValidator(_values_within(0.0, None)),
]
"""A number > 0, or a schedule of values >= 0 (learning rate, clip range)."""
ScheduledNonNegative = Annotated[
    Annotated[Annotated[float, Field(ge=0)], Tag("number")] | Annotated[Schedule, Tag("schedule")],
    Discriminator(_number_or_schedule),
    BeforeValidator(parse_shorthand),
    AfterValidator(_values_within(0.0, None)),
]
"""A number >= 0, or a schedule of values >= 0 (entropy coefficient)."""
ScheduledUnit = Annotated[
    Annotated[Annotated[float, Field(ge=0, le=1)], Tag("number")] | Annotated[Schedule, Tag("schedule")],
    Discriminator(_number_or_schedule),
    BeforeValidator(parse_shorthand),
    AfterValidator(_values_within(0.0, 1.0)),
]
"""A number in [0, 1], or a schedule of values in [0, 1] (exploration epsilon)."""

Scheduled = float | AnySchedule


def is_scheduled(value: object) -> bool:
    """Whether `value` changes during a run: a schedule other than a constant one."""
    return isinstance(value, SCHEDULE_TYPES) and not isinstance(value, ConstantSchedule)


def initial_value(value: Scheduled | None) -> float | None:
    """What a driver builds with: a schedule's value at progress 0, a number itself, None as None."""
    if isinstance(value, SCHEDULE_TYPES):
        return value.value_at(0.0)
    return value


def section_values(section: BaseModel | None) -> dict[str, Any]:
    """A section's set fields, as `model_dump(exclude_none=True)`, each schedule at progress 0.

    What a driver maps to its library's constructor; the core sets the scheduled values later.
    """
    if section is None:
        return {}
    values = section.model_dump(exclude_none=True)
    for name in values:
        value = getattr(section, name)
        if isinstance(value, SCHEDULE_TYPES):
            values[name] = value.value_at(0.0)
    return values


def _section_field(spec: AgentSpec, name: str) -> object:
    # Only the on-policy sections' ent_coef is schedulable (SAC's is a number or "auto").
    if spec.algorithm not in ("ppo", "a2c", "dqn"):
        return None
    section = spec.section()
    return getattr(section, name, None) if section is not None else None


def scheduled_value(spec: AgentSpec, name: str) -> object:
    """The spec's value (number, schedule or None) of the scheduled value `name`."""
    if name == "learning_rate":
        return spec.learning_rate
    return _section_field(spec, name)


def spec_schedules(spec: AgentSpec) -> dict[str, AnySchedule]:
    """The spec's non-constant schedules by name ("learning_rate", "clip_range", ...)."""
    found: dict[str, AnySchedule] = {}
    for name in SCHEDULED_NAMES:
        value = scheduled_value(spec, name)
        if is_scheduled(value):
            assert isinstance(value, SCHEDULE_TYPES)
            found[name] = value
    return found


def resolved_spec(spec: AgentSpec) -> AgentSpec:
    """The spec as a driver gets it: every schedule replaced by its value at progress 0.

    The core then sets the scheduled values before every iteration, so a driver written before
    schedules existed (or one that ignores them) never receives a schedule where it reads a number.
    """
    updates: dict[str, Any] = {}
    if isinstance(spec.learning_rate, SCHEDULE_TYPES):
        updates["learning_rate"] = spec.learning_rate.value_at(0.0)
    section = spec.section()
    if section is not None:
        changed = {
            name: value.value_at(0.0)
            for name in ("clip_range", "ent_coef", "epsilon")
            if isinstance(value := getattr(section, name, None), SCHEDULE_TYPES)
        }
        if changed:
            updates[spec.algorithm] = section.model_copy(update=changed)
    return spec.model_copy(update=updates) if updates else spec


def run_progress(
    start_steps: int, env_steps: int, horizon: int | None, elapsed: float, time_limit: float | None
) -> float:
    """The fraction of a train() call done: by its planned env steps, else by its time limit, else 0.

    `horizon` is the lifetime env-step count the call plans to end at (`polyrl.training`); a call
    limited by time alone advances by the clock; one with no limit stays at 0 (the start value).
    """
    if horizon is not None and horizon > start_steps:
        return _clamp((env_steps - start_steps) / (horizon - start_steps))
    if time_limit:
        return _clamp(elapsed / time_limit)
    return 0.0


__all__ = [
    "KINDS",
    "SCHEDULED_NAMES",
    "AnySchedule",
    "ConstantSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "PiecewiseSchedule",
    "Schedule",
    "Scheduled",
    "ScheduledNonNegative",
    "ScheduledPositive",
    "ScheduledUnit",
    "initial_value",
    "is_schedule_model",
    "is_scheduled",
    "parse_shorthand",
    "resolved_spec",
    "run_progress",
    "scheduled_value",
    "section_values",
    "spec_schedules",
]
