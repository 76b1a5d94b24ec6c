"""Learning curves of many runs: mean with a band over seeds per group, as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

from polyrl.experiments.results import RunData, group_runs, mean_band


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for label, members in group_runs(runs, list(group_by or [])).items():
        grid, mean, std = mean_band(members, x, metric, window)
        if not len(grid):
            continue
        line = axes.plot(grid, mean, label=f"{label} (n={len(members)})")[0]
        axes.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    axes.set_xlabel(x.replace("_", " "))
    axes.set_ylabel(metric.replace("_", " ") + (f" (smoothed over {window})" if window > 1 else ""))
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in formats:
        target = out.with_suffix(f".{suffix}")
        figure.savefig(target)
        written.append(target)
    plt.close(figure)
    return written
