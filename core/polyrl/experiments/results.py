"""Read finished runs back: their config, curves and summary, grouped by any spec field."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from polyrl.errors import ConfigurationError
from polyrl.experiments.plan import CONFIG_FILE, PROGRESS_FILE, RunStatus


class RunData:
    """One run directory: its spec (as a flat dict of field paths), progress rows and status."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        document = json.loads((directory / CONFIG_FILE).read_text())
        self.spec: dict[str, Any] = _flatten(document["spec"])
        with (directory / PROGRESS_FILE).open(newline="", encoding="utf-8") as handle:
            self.rows = list(csv.DictReader(handle))
        self.status = RunStatus.read(directory)

    def series(self, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) points of a metric over the run, skipping rows where either is empty."""
        points = [
            (float(r[x]), float(r[y]))
            for r in self.rows
            if r.get(x) not in (None, "") and r.get(y) not in (None, "")
        ]
        if not points:
            return np.empty(0), np.empty(0)
        xs, ys = zip(*points, strict=True)
        return np.asarray(xs), np.asarray(ys)

    def group_key(self, fields: list[str]) -> str:
        """The run's group label: the values of `fields`, e.g. "backend=sb3 algorithm=ppo"."""
        missing = [f for f in fields if f.replace(":", ".") not in self.spec]
        if missing:
            raise ConfigurationError(
                f"cannot group by {missing}: the spec of {self.directory} has the fields {sorted(self.spec)}"
            )
        return " ".join(f"{f}={_label(self.spec[f.replace(':', '.')])}" for f in fields)


def _label(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "backend_options":
            flat.update(_flatten(value, f"{name}."))
        flat[name] = value
    return flat


def find_runs(paths: list[Path]) -> list[RunData]:
    """Every run directory (holding config.json and progress.csv) at or below the given paths."""
    found: dict[Path, RunData] = {}
    for path in paths:
        if not path.exists():
            raise ConfigurationError(f"{path} does not exist; give run, experiment or data directories")
        candidates = (
            [path / CONFIG_FILE] if (path / CONFIG_FILE).is_file() else sorted(path.rglob(CONFIG_FILE))
        )
        for config in candidates:
            if (config.parent / PROGRESS_FILE).is_file() and config.parent not in found:
                found[config.parent] = RunData(config.parent)
    if not found:
        raise ConfigurationError(
            f"no runs (directories with {CONFIG_FILE} and {PROGRESS_FILE}) under {', '.join(map(str, paths))}"
        )
    return list(found.values())


def group_runs(runs: list[RunData], fields: list[str]) -> dict[str, list[RunData]]:
    """Runs by the values of `fields` (default: the fields that differ between runs, seed excluded)."""
    if not fields:
        names = {name for run in runs for name in run.spec}
        fields = sorted(
            name
            for name in names
            if name not in ("seed", "env_kwargs", "backend_options")
            and "." not in name
            and len({json.dumps(run.spec.get(name), sort_keys=True) for run in runs}) > 1
        ) or ["algorithm"]
    groups: dict[str, list[RunData]] = {}
    for run in runs:
        groups.setdefault(run.group_key(fields), []).append(run)
    return dict(sorted(groups.items()))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over `window` points (1: unchanged)."""
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values, dtype=float)
    for i in range(len(values)):
        start = max(0, i + 1 - window)
        out[i] = (cumulative[i + 1] - cumulative[start]) / (i + 1 - start)
    return out


def mean_band(
    runs: list[RunData], x: str, y: str, window: int, points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of `y` over the runs, interpolated on a shared x grid they all cover."""
    curves = [run.series(x, y) for run in runs]
    curves = [(xs, smooth(ys, window)) for xs, ys in curves if len(xs)]
    if not curves:
        return np.empty(0), np.empty(0), np.empty(0)
    low = max(xs[0] for xs, _ in curves)
    high = min(xs[-1] for xs, _ in curves)
    grid = np.linspace(low, high, points) if high > low else np.asarray([high])
    stacked = np.stack([np.interp(grid, xs, ys) for xs, ys in curves])
    return grid, stacked.mean(axis=0), stacked.std(axis=0)


def summarize(group: str, runs: list[RunData], metric: str) -> dict[str, Any]:
    """Final and best values of `metric` per group: mean and std over seeds, and wall time."""
    finals, bests, walls = [], [], []
    for run in runs:
        _, ys = run.series("env_steps", metric)
        if len(ys):
            finals.append(float(ys[-1]))
            bests.append(float(ys.max()))
        if run.rows and run.rows[-1].get("wall_seconds"):
            walls.append(float(run.rows[-1]["wall_seconds"]))
    evals = [r.status.eval_return_mean for r in runs if r.status and r.status.eval_return_mean is not None]

    def stats(values: list[float]) -> tuple[float | None, float | None]:
        if not values:
            return None, None
        mean = sum(values) / len(values)
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))

    final_mean, final_std = stats(finals)
    best_mean, best_std = stats(bests)
    eval_mean, eval_std = stats(evals)
    wall_mean, _ = stats(walls)
    return {
        "group": group,
        "runs": len(runs),
        "final_mean": final_mean,
        "final_std": final_std,
        "best_mean": best_mean,
        "best_std": best_std,
        "eval_mean": eval_mean,
        "eval_std": eval_std,
        "wall_seconds_mean": wall_mean,
    }
