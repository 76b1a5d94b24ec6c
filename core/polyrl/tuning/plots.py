"""The study's pictures, drawn with matplotlib (Agg): optimisation history and parameter importance.

polyrl.tune draws both once a trial completed or was pruned (a study whose every trial failed
gets none); where one has nothing to draw yet (importance needs two complete trials that
differ), the figure says so.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.files import replace_atomically, temporary_sibling
from polyrl.tuning.results import TrialRow
from polyrl.tuning.study import require_optuna

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from optuna import Study

_STATE_STYLE = {"complete": ("o", "tab:blue"), "pruned": ("x", "tab:gray"), "failed": ("v", "tab:red")}


def _figure() -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    return figure, axes


def _save(figure: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    staging = temporary_sibling(path)
    figure.savefig(staging)
    plt.close(figure)
    replace_atomically(staging, path)
    return path


def _note(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, wrap=True)


def plot_history(rows: list[TrialRow], path: Path, title: str) -> Path:
    """Each trial's value by trial number (pruned ones at their last evaluation) and the best so far."""
    figure, axes = _figure()
    ordered = sorted(rows, key=lambda row: row.number)
    for state, (marker, color) in _STATE_STYLE.items():
        points = [(row.number, row.value) for row in ordered if row.state == state and row.value is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            label = {"pruned": "pruned (last evaluation)"}.get(state, state)
            axes.scatter(xs, ys, marker=marker, color=color, label=label, zorder=3)
    best: list[tuple[int, float]] = []
    for row in ordered:
        if row.state == "complete" and row.value is not None and (not best or row.value > best[-1][1]):
            best.append((row.number, row.value))
    if best:
        last = max(row.number for row in ordered)
        numbers = [number for number, _ in best] + [last]
        values = [value for _, value in best] + [best[-1][1]]
        axes.step(numbers, values, where="post", color="tab:orange", label="best so far")
        axes.legend(loc="best", fontsize="small")
    else:
        _note(axes, "no complete trial yet")
    axes.set_xlabel("trial")
    axes.set_ylabel("objective (mean deterministic evaluation return)")
    axes.set_title(f"{title}: optimisation history")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def study_states() -> Any:
    """Optuna's TrialState enum."""
    return require_optuna().trial.TrialState


def importances(study: Study) -> dict[str, float]:
    """Each parameter's importance (Optuna's PED-ANOVA when available, else its default); {} when
    the complete trials cannot tell (fewer than two, or all alike)."""
    optuna = require_optuna()
    evaluator = None
    if hasattr(optuna.importance, "PedAnovaImportanceEvaluator"):
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found: dict[str, float] = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ZeroDivisionError, ImportError):
        return {}
    return found


def plot_importance(study: Study, path: Path, title: str) -> Path:
    """A horizontal bar per searched field: its share of the objective's variation."""
    figure, axes = _figure()
    found = importances(study)
    if found:
        names = list(found)[::-1]
        axes.barh(names, [found[name] for name in names], color="tab:blue")
        axes.set_xlabel("importance (share of the objective's variation)")
    else:
        _note(axes, "parameter importance needs at least two complete trials that differ")
        axes.set_axis_off()
    complete = len(study.get_trials(deepcopy=False, states=(study_states().COMPLETE,)))
    axes.set_title(f"{title}: parameter importance ({complete} complete trials)")
    return _save(figure, path)
