"""`polyrl bench --baseline zoo`: each cell next to RL Zoo3's configuration of its algorithm x env.

RL Zoo3 (the `rl-zoo3` package) publishes tuned hyperparameters for Stable-Baselines3. Beside
each cell whose backend's plugin runs them (`polyrl_zoo_config` / `polyrl_zoo_training`: the sb3
plugin, for the sb3 cells), the same seeds of the Zoo's configuration train through the library
directly, under the bench's protocol (`protocol.SeedProtocol`: same evaluations, same clocks,
same stop at the threshold). The report puts env steps and training seconds to the solve
threshold side by side, with polyrl / zoo ratios: what a user gets from polyrl with nothing set
but backend, algorithm, env and seed, against the Zoo's tuned configuration.

`--max-slowdown X` with `--baseline zoo` fails a cell that needs more than X times the Zoo's env
steps, or reaches the threshold on fewer seeds than the Zoo's configuration.

The bench names no backend: which cells get a Zoo run is up to the plugins' hooks. rl-zoo3 is not
a dependency of polyrl; it is needed only here (`pip install rl-zoo3`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import TYPE_CHECKING

from polyrl.errors import ConfigurationError, ExtraNotInstalledError

from polyrl_conformance.bench.records import BenchReport, CellResult, ZooComparison, ZooConfig, ZooRow

if TYPE_CHECKING:
    from polyrl.plugins import PluginRegistry

    from polyrl_conformance.bench.cells import BenchCell

PACKAGE = "rl_zoo3"
INSTALL = "pip install rl-zoo3"


def zoo_version() -> str:
    """The installed rl-zoo3's version; ExtraNotInstalledError saying how to install it."""
    if importlib.util.find_spec(PACKAGE) is None:
        raise ExtraNotInstalledError(
            f"--baseline zoo reads RL Zoo3's hyperparameters from the rl-zoo3 package, which is not "
            f"installed: {INSTALL} (into the environment that runs the bench; polyrl does not need it)"
        )
    return importlib.metadata.version(PACKAGE)


def zoo_configs(cells: list[BenchCell], plugins: PluginRegistry | None = None) -> dict[str, ZooConfig]:
    """Cell key -> RL Zoo3's configuration the cell's plugin runs beside it (before anything trains).

    Cells of backends no plugin runs the Zoo for are left out; if that is every cell, a
    ConfigurationError says so. Errors of the plugins (rl-zoo3 missing, an unsupported setting)
    propagate.
    """
    from polyrl.plugins import registry

    plugins = plugins or registry()
    hook = getattr(plugins.manager.hook, "polyrl_zoo_config", None)
    configs: dict[str, ZooConfig] = {}
    for cell in cells:
        answer = None if hook is None else hook(cell=cell)
        if answer is not None:
            configs[cell.key] = ZooConfig.model_validate(answer)
    if not configs:
        raise ConfigurationError(
            f"--baseline zoo runs RL Zoo3's configurations beside the cells of backends whose plugin "
            f"runs them (sb3's); none of the {len(cells)} selected cell(s) has one: select sb3 cells "
            "(--backend sb3)"
        )
    return configs


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return ours / theirs if ours is not None and theirs else None


def zoo_row(result: CellResult) -> ZooRow | None:
    """The cell next to its Zoo run, with the polyrl / zoo ratios (None: the cell has no Zoo run)."""
    arm = result.zoo
    if arm is None:
        return None
    return ZooRow(
        cell=result.cell.key,
        preset=result.preset,
        zoo_source=arm.config.source,
        zoo_missing=arm.config.missing,
        zoo_budget_steps=arm.config.n_timesteps,
        seeds=len(result.seeds),
        solved_seeds=result.solved_seeds,
        zoo_seeds=len(arm.seeds),
        zoo_solved_seeds=arm.solved_seeds,
        steps_to_threshold=result.steps_to_threshold,
        zoo_steps_to_threshold=arm.steps_to_threshold,
        steps_ratio=_ratio(result.steps_to_threshold, arm.steps_to_threshold),
        seconds_to_threshold=result.seconds_to_threshold,
        zoo_seconds_to_threshold=arm.seconds_to_threshold,
        seconds_ratio=_ratio(result.seconds_to_threshold, arm.seconds_to_threshold),
        cpu_seconds_to_threshold=result.cpu_seconds_to_threshold,
        zoo_cpu_seconds_to_threshold=arm.cpu_seconds_to_threshold,
        cpu_ratio=_ratio(result.cpu_seconds_to_threshold, arm.cpu_seconds_to_threshold),
    )


def _failure(row: ZooRow, max_slowdown: float) -> str | None:
    if row.zoo_steps_to_threshold is None:
        return None  # the Zoo's configuration never reached the threshold: nothing to be slower than
    if row.solved_seeds < row.zoo_solved_seeds:
        return (
            f"cell {row.cell}: reached the solve threshold on {row.solved_seeds} of {row.seeds} seeds, "
            f"RL Zoo3's configuration on {row.zoo_solved_seeds} of {row.zoo_seeds}"
        )
    if row.steps_ratio is not None and row.steps_ratio > max_slowdown:
        return (
            f"cell {row.cell}: {row.steps_to_threshold:,.0f} env steps to the solve threshold, "
            f"{row.steps_ratio:.2f}x RL Zoo3's {row.zoo_steps_to_threshold:,.0f} (allowed {max_slowdown:g}x)"
        )
    return None


def compare_zoo(report: BenchReport, max_slowdown: float | None = None) -> BenchReport:
    """`report` with its cells' Zoo runs as a comparison (and its failures, with `max_slowdown`)."""
    rows = [row for result in report.cells if (row := zoo_row(result)) is not None]
    if not rows:
        raise ConfigurationError(
            "--baseline zoo: these results hold no RL Zoo3 runs; run `polyrl bench --baseline zoo` "
            "to make them"
        )
    failures = []
    if max_slowdown is not None:
        failures = [message for row in rows if (message := _failure(row, max_slowdown)) is not None]
    versions = sorted({arm.config.version for result in report.cells if (arm := result.zoo) is not None})
    comparison = ZooComparison(
        zoo_version=", ".join(versions), max_slowdown=max_slowdown, rows=rows, failures=failures
    )
    return report.model_copy(update={"zoo": comparison}).with_verdict()


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def zoo_table(report: BenchReport) -> list[str]:
    """The cells next to RL Zoo3's runs, as Markdown lines (none without a Zoo comparison)."""
    comparison = report.zoo
    if comparison is None:
        return []
    limit = (
        f"; a cell fails above {comparison.max_slowdown:g}x the Zoo's env steps or solving fewer seeds"
        if comparison.max_slowdown is not None
        else ""
    )
    lines = [
        f"Against RL Zoo3's configurations (rl-zoo3 {comparison.zoo_version}), trained through SB3 "
        f"directly with the same seeds and protocol{limit}. Steps and seconds: mean over the seeds "
        "that reached the solve threshold; ratios polyrl / zoo. Training CPU seconds (each worker "
        "process's) are steadier than wall seconds on a machine shared with other jobs.",
        "",
        "| cell | preset | solved polyrl / zoo | steps polyrl | steps zoo | steps ratio | training s polyrl "
        "| training s zoo | seconds ratio | CPU s polyrl | CPU s zoo | CPU ratio | zoo budget |",
        "| --- | --- | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in comparison.rows:
        if row.zoo_missing is not None:
            lines.append(
                f"| {row.cell} | {row.preset or '-'} | no RL Zoo3 configuration: {row.zoo_missing} |"
            )
            continue
        lines.append(
            f"| {row.cell} | {row.preset or '-'} | {row.solved_seeds}/{row.seeds} / "
            f"{row.zoo_solved_seeds}/{row.zoo_seeds} | {_number(row.steps_to_threshold)} | "
            f"{_number(row.zoo_steps_to_threshold)} | {_times(row.steps_ratio)} | "
            f"{_number(row.seconds_to_threshold, 1)} | {_number(row.zoo_seconds_to_threshold, 1)} | "
            f"{_times(row.seconds_ratio)} | {_number(row.cpu_seconds_to_threshold, 1)} | "
            f"{_number(row.zoo_cpu_seconds_to_threshold, 1)} | {_times(row.cpu_ratio)} | "
            f"{_number(row.zoo_budget_steps)} |"
        )
    return lines
