"""Monitored metrics: resolve a metric by name, compare values, and reject unknown names early.

Callbacks that watch a metric (ModelCheckpoint, EarlyStopping, ReduceLROnPlateau) share this.
A name is checked when training starts, before the first iteration runs (after every
callback's on_train_begin, so an Evaluation callback anywhere in the list counts):

- the common vocabulary (`polyrl.COMMON_METRICS`), the loss names, `eval_*` names when the run
  evaluates, and names a callback declared with `declare_metrics` are accepted;
- an `eval_*` name in a run that does not evaluate is an error saying how to turn evaluation on;
- a name close to a known one (a typo) is an error listing the known names;
- any other name may be one of the backend's own metrics, which are only known once an iteration
  ran: it is accepted provisionally, and the first iteration record that lacks it is an error
  listing the names that record has.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Literal

from polyrl.errors import ConfigurationError, UnknownMetricError
from polyrl.records import COMMON_METRICS

if TYPE_CHECKING:
    from polyrl.callbacks.context import RunContext
    from polyrl.records import IterationRecord

#: Loss names a backend reports where they apply (absent before learning starts, e.g. DQN).
LOSS_METRICS = ("loss", "policy_loss", "value_loss", "entropy_loss", "q_loss", "actor_loss", "critic_loss")

#: Names the evaluation schedule (TrainConfig.eval_every or the Evaluation callback) records.
EVAL_METRICS = (
    "eval_return_mean",
    "eval_return_std",
    "eval_return_min",
    "eval_return_max",
    "eval_length_mean",
)

#: Short names accepted for convenience, and the metric each stands for.
ALIASES = {
    "return": "return_mean",
    "episode_return": "return_mean",
    "episode_length": "episode_length_mean",
    "length": "episode_length_mean",
    "lr": "learning_rate",
    "eval_return": "eval_return_mean",
    "eval_episode_length": "eval_length_mean",
    "eval_length": "eval_length_mean",
}

Mode = Literal["auto", "min", "max"]


def resolve_metric_name(name: str) -> str:
    """The record name behind `name` (aliases such as "episode_length" resolved)."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a metric name must be a non-empty string, got {name!r}")
    return ALIASES.get(name, name)


def declare_metrics(context: RunContext, *names: str) -> None:
    """Promise that this run's records will carry `names` (call it from on_train_begin)."""
    context.declared_metrics.update(names)


def evaluates(context: RunContext) -> bool:
    """Whether the run evaluates on a schedule (eval_* metrics will appear)."""
    return bool(getattr(context.config, "eval_every", 0))


def known_metric_names(context: RunContext) -> set[str]:
    """Every name the run will record whatever the backend: common, losses, eval, declared, seen."""
    names = {*COMMON_METRICS, *LOSS_METRICS, *context.declared_metrics}
    if evaluates(context):
        names.update(EVAL_METRICS)
    for record in context.history:
        names.update(record.flat())
    return names


def default_mode(name: str) -> Literal["min", "max"]:
    """ "min" for losses and durations, "max" for everything else (returns, lengths, counts)."""
    if name in LOSS_METRICS or name.endswith("loss") or name.endswith("_seconds"):
        return "min"
    return "max"


class Monitor:
    """One monitored metric: its resolved name, direction, and the checks of a run.

    `owner` names the callback in error messages. Call `start()` at train begin, `check(context)`
    before the first iteration, and `value(context, record)` at each iteration end.
    """

    def __init__(
        self, name: str, mode: Mode = "auto", min_delta: float = 0.0, owner: str = "monitor"
    ) -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigurationError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(min_delta, int | float) or min_delta < 0 or math.isnan(min_delta):
            raise ConfigurationError(f"{owner}: min_delta must be a number >= 0, got {min_delta!r}")
        self.requested = name
        self.name = resolve_metric_name(name)
        self.mode: Literal["min", "max"] = default_mode(self.name) if mode == "auto" else mode
        self.min_delta = float(min_delta)
        self.owner = owner
        self._checked = False
        self._confirmed = False

    def start(self) -> None:
        """Forget the previous run's checks (a new train() call may configure evaluation anew)."""
        self._checked = False
        self._confirmed = False

    def _label(self) -> str:
        return repr(self.requested) + (f" (= {self.name!r})" if self.requested != self.name else "")

    def check(self, context: RunContext) -> None:
        """Reject names that cannot appear in this run; idempotent within a run."""
        if self._checked:
            return
        self._checked = True
        known = known_metric_names(context)
        if self.name in known:
            self._confirmed = True
            return
        if self.name in EVAL_METRICS and not evaluates(context):
            raise UnknownMetricError(
                f"{self.owner} monitors {self._label()}, but this run does not evaluate: set "
                "TrainConfig(eval_every=N) or add polyrl.callbacks.Evaluation(every=N) to the callbacks"
            )
        vocabulary = known | set(EVAL_METRICS) | set(ALIASES)
        close = difflib.get_close_matches(self.name, sorted(vocabulary), n=3, cutoff=0.75)
        if close:
            raise UnknownMetricError(
                f"{self.owner} monitors {self._label()}, which this run does not record (did you mean "
                f"{' or '.join(map(repr, close))}?). Recorded metric names: {sorted(known)}, plus the "
                "backend's own metrics (known after the first iteration)"
            )

    def value(self, context: RunContext, record: IterationRecord) -> float | None:
        """The monitored number in `record`, or None when the record has none this time."""
        values = record.flat()
        if self.name in values:
            self._confirmed = True
            value = values[self.name]
            return None if value is None else float(value)
        if not self._confirmed and self.name not in known_metric_names(context):
            raise UnknownMetricError(
                f"{self.owner} monitors {self._label()}, which this run does not record. Recorded "
                f"metric names: {sorted(values)}"
            )
        return None

    def better(self, value: float, best: float | None) -> bool:
        """Whether `value` improves on `best` by more than min_delta (NaN never improves)."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        if self.mode == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta

    def reached(self, value: float, target: float) -> bool:
        """Whether `value` is at or beyond `target` in the monitored direction."""
        return value >= target if self.mode == "max" else value <= target

    def __repr__(self) -> str:
        return f"Monitor({self.name!r}, mode={self.mode!r})"
