"""Tuning: Optuna studies over any backend's AgentSpec, pruned through polyrl's own training loop.

`polyrl.tune(...)` (and `polyrl tune NAME`) samples specs from a search space (a JSON document
of field paths and distributions; ready ones per algorithm), trains each trial's seeds through
the core loop with a deterministic evaluation every few thousand env steps, lets Optuna's
pruner stop poor trials, and keeps every trial as a run directory like a grid's. Studies live
in SQLite by default, or in any database Optuna supports, shared by worker processes or Ray
tasks. Optuna is imported only when a study runs (`pip install 'polyrl[tune]'`).

What a call returns (TuneReport, StudySummary, TrialRow) lives in `polyrl.tuning.results`.
"""

from polyrl.tuning.api import tune
from polyrl.tuning.plan import TunePlan, TuneSettings
from polyrl.tuning.ready import READY_SPACES, ready_space
from polyrl.tuning.space import SearchSpace, check_space

__all__ = [
    "READY_SPACES",
    "SearchSpace",
    "TunePlan",
    "TuneSettings",
    "check_space",
    "ready_space",
    "tune",
]
