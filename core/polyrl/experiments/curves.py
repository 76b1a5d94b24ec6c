"""Learning curves of many runs: mean with a band over seeds per group, as PNG and SVG."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polyrl.experiments.results import RunData, group_runs, mean_band

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D


@dataclass
class CurvePlot:
    """A drawn figure, its line per group label, and the groups that had no point to draw."""

    figure: Figure
    lines: dict[str, Line2D] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)


def draw_curves(
    runs: list[RunData],
    group_by: list[str] | None = None,
    metric: str = "return_mean",
    x: str = "env_steps",
    window: int = 1,
) -> CurvePlot:
    """Draw `metric` against `x` per group (mean ± std over the group's runs) on a new figure.

    A group with a single point (one evaluation, one iteration) is drawn as a marker with its
    std as an error bar: a line through one point would be invisible.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    plot = CurvePlot(figure)
    for label, members in group_runs(runs, list(group_by or [])).items():
        grid, mean, std = mean_band(members, x, metric, window)
        if not len(grid):
            plot.empty.append(label)
            continue
        single = len(grid) == 1
        line = axes.plot(grid, mean, label=f"{label} (n={len(members)})", marker="o" if single else None)[0]
        if single:
            axes.errorbar(grid, mean, yerr=std, fmt="none", color=line.get_color(), capsize=4)
        else:
            axes.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        plot.lines[label] = line
    axes.set_xlabel(x.replace("_", " "))
    axes.set_ylabel(metric.replace("_", " ") + (f" (smoothed over {window})" if window > 1 else ""))
    axes.grid(alpha=0.3)
    if plot.lines:
        axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return plot


def save_curves(plot: CurvePlot, out: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write the figure as out.png, out.svg, ...; close it and return the files."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in formats:
        target = out.with_suffix(f".{suffix}")
        plot.figure.savefig(target)
        written.append(target)
    plt.close(plot.figure)
    return written


def plot_curves(
    runs: list[RunData],
    out: Path,
    group_by: list[str] | None = None,
    metric: str = "return_mean",
    x: str = "env_steps",
    window: int = 1,
    formats: tuple[str, ...] = ("png", "svg"),
) -> list[Path]:
    """Draw `metric` against `x` per group (mean ± std over the group's runs); return the files."""
    return save_curves(draw_curves(runs, group_by, metric, x, window), out, formats)
