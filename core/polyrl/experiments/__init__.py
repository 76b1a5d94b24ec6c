"""Experiments: run directories, grids over backends x hyperparameters x seeds, curves and tables.

Each run lives in its own directory (config.json, progress.csv, records.jsonl, checkpoint/,
plots.png, status.json) and runs in its own process: a local process pool by default, Ray tasks
on a cluster when given an address.
"""

from polyrl.experiments.grid import ExperimentGrid, Grid, GridCounts, GridInterrupted, GridReport, GridResult
from polyrl.experiments.plan import RunPlan, RunStatus
from polyrl.experiments.runner import execute_run, rerun

__all__ = [
    "ExperimentGrid",
    "Grid",
    "GridCounts",
    "GridInterrupted",
    "GridReport",
    "GridResult",
    "RunPlan",
    "RunStatus",
    "execute_run",
    "rerun",
]
