"""What `polyrl bench` measures, as pydantic models: per seed, per cell, and the whole run."""

from __future__ import annotations

import math
import statistics
from typing import Literal

from polyrl._model import StrictModel
from pydantic import Field, JsonValue

from polyrl_conformance.bench.cells import BenchCell
from polyrl_conformance.bench.matrix import Slice


class CurvePoint(StrictModel):
    """One point of a learning curve: after an iteration, or after an evaluation."""

    env_steps: int
    train_seconds: float = Field(description="Training clock: driver iterations only, evaluations excluded.")
    return_mean: float | None = Field(default=None, description="Training episodes ended in the iteration.")
    eval_return_mean: float | None = None
    eval_return_std: float | None = None


class SeedPlan(StrictModel):
    """What one worker process runs: a cell with one seed (written as plan.json in its directory)."""

    cell: BenchCell
    seed: int
    stop_at_threshold: bool = False
    arm: Literal["polyrl", "zoo"] = Field(
        default="polyrl",
        description="Who trains: polyrl's agent for the cell, or RL Zoo3's configuration of the cell's "
        "algorithm x env through the library directly (`polyrl bench --baseline zoo`).",
    )


class SeedResult(StrictModel):
    """How one seed of a cell went."""

    seed: int
    status: Literal["done", "failed"]
    error: str | None = None
    directory: str | None = None
    env_steps: int = 0
    iterations: int = 0
    setup_seconds: float = Field(
        default=0.0, description="Building the agent (imports, a library's runtime start, envs)."
    )
    train_seconds: float = Field(default=0.0, description="Sum of the iterations' seconds.")
    train_cpu_seconds: float | None = Field(
        default=None, description="The worker process's CPU seconds over the iterations."
    )
    eval_seconds: float = 0.0
    wall_seconds: float = Field(default=0.0, description="Everything, building and evaluations included.")
    steps_per_second: float | None = Field(default=None, description="Env steps per training second.")
    stop_reason: str | None = None
    final_return_mean: float | None = Field(default=None, description="The last deterministic evaluation.")
    final_return_std: float | None = None
    best_eval_return_mean: float | None = None
    preset: str | None = Field(
        default=None, description='The preset the agent trained with (polyrl\'s arm; "none": none).'
    )
    preset_source: str | None = Field(default=None, description="Where the preset's values come from.")
    solved: bool = False
    steps_to_threshold: int | None = None
    seconds_to_threshold: float | None = Field(
        default=None, description="Training seconds until the evaluation first reached the threshold."
    )
    cpu_seconds_to_threshold: float | None = Field(
        default=None,
        description="Training CPU seconds (this process's) until then: steadier on a loaded machine.",
    )
    wall_seconds_to_threshold: float | None = Field(
        default=None, description="Seconds from the start of building, evaluations included."
    )
    curve: list[CurvePoint] = Field(default_factory=list)


class RatioResult(StrictModel):
    """polyrl's wall time over the native library's for the same configuration, in one process."""

    available: bool = Field(description="False when the backend implements no polyrl_direct_training.")
    env_steps: int = 0
    repeats: int = 0
    polyrl_seconds: list[float] = Field(default_factory=list)
    direct_seconds: list[float] = Field(default_factory=list)
    polyrl_median: float | None = None
    direct_median: float | None = None
    ratio: float | None = Field(default=None, description="Median polyrl seconds / median direct seconds.")
    polyrl_cpu_seconds: list[float] = Field(
        default_factory=list, description="CPU seconds of the measuring process per polyrl run."
    )
    direct_cpu_seconds: list[float] = Field(default_factory=list)
    polyrl_cpu_median: float | None = None
    direct_cpu_median: float | None = None
    cpu_ratio: float | None = Field(
        default=None,
        description="Median polyrl CPU seconds / median direct CPU seconds: steadier than the wall-time "
        "ratio on a machine shared with other jobs.",
    )
    error: str | None = None


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _to_threshold(seeds: list[SeedResult]) -> tuple[float | None, float | None, float | None]:
    """Mean env steps, training seconds and CPU seconds to the threshold over the seeds that reached it."""
    solved = [s for s in seeds if s.solved]
    steps = _mean_std([float(s.steps_to_threshold or 0) for s in solved])[0]
    seconds = _mean_std([s.seconds_to_threshold or 0.0 for s in solved])[0]
    cpu = [s.cpu_seconds_to_threshold for s in solved if s.cpu_seconds_to_threshold is not None]
    return steps, seconds, _mean_std(cpu)[0] if len(cpu) == len(solved) else None


class ZooConfig(StrictModel):
    """RL Zoo3's configuration of a cell's algorithm x env, as its hyperparams file holds it."""

    source: str = Field(description="The file and entry read, e.g. hyperparams/ppo.yml: CartPole-v1.")
    version: str = Field(description="The rl-zoo3 package's version.")
    hyperparams: dict[str, JsonValue] = Field(default_factory=dict)
    n_timesteps: int | None = Field(default=None, description="The env steps RL Zoo3 trains it for.")
    missing: str | None = Field(default=None, description="Why there is no configuration to run.")


class ZooArm(StrictModel):
    """RL Zoo3's configuration run beside a cell through the library directly: its seeds, summarized."""

    config: ZooConfig
    seeds: list[SeedResult] = Field(default_factory=list)
    solved_seeds: int = 0
    steps_to_threshold: float | None = Field(default=None, description="Mean over the seeds that solved.")
    seconds_to_threshold: float | None = Field(default=None, description="Mean over the seeds that solved.")
    cpu_seconds_to_threshold: float | None = Field(
        default=None, description="Mean over the seeds that solved."
    )
    final_return_mean: float | None = None
    steps_per_second: float | None = Field(default=None, description="Median over seeds.")

    @classmethod
    def summarize(cls, config: ZooConfig, seeds: list[SeedResult]) -> ZooArm:
        """The arm's summary over its seeds (same statistics as a cell's)."""
        steps, seconds, cpu = _to_threshold(seeds)
        speeds = [s.steps_per_second for s in seeds if s.steps_per_second]
        return cls(
            config=config,
            seeds=seeds,
            solved_seeds=sum(s.solved for s in seeds),
            steps_to_threshold=steps,
            seconds_to_threshold=seconds,
            cpu_seconds_to_threshold=cpu,
            final_return_mean=_mean_std(
                [s.final_return_mean for s in seeds if s.final_return_mean is not None]
            )[0],
            steps_per_second=statistics.median(speeds) if speeds else None,
        )


class CellResult(StrictModel):
    """A cell's seeds, summary statistics and verdict."""

    cell: BenchCell
    seeds: list[SeedResult] = Field(default_factory=list)
    ratio: RatioResult | None = None
    zoo: ZooArm | None = Field(
        default=None, description="RL Zoo3's configuration beside it (--baseline zoo)."
    )
    preset: str | None = Field(
        default=None,
        description="The preset the seeds trained with (several, comma-separated, if they differ).",
    )
    final_return_mean: float | None = Field(default=None, description="Mean over seeds of the final eval.")
    final_return_std: float | None = Field(default=None, description="Std over seeds of the final eval.")
    best_return_mean: float | None = Field(default=None, description="Mean over seeds of the best eval.")
    solved_seeds: int = 0
    steps_to_threshold: float | None = Field(default=None, description="Mean over the seeds that solved.")
    seconds_to_threshold: float | None = Field(default=None, description="Mean over the seeds that solved.")
    cpu_seconds_to_threshold: float | None = Field(
        default=None, description="Mean over the seeds that solved."
    )
    steps_per_second: float | None = Field(default=None, description="Median over seeds.")
    passed: bool = False
    message: str | None = Field(default=None, description="Why the cell failed.")

    @classmethod
    def summarize(
        cls,
        cell: BenchCell,
        seeds: list[SeedResult],
        ratio: RatioResult | None = None,
        zoo: ZooArm | None = None,
    ) -> CellResult:
        """Aggregate the seeds of a cell and decide whether it passes its min_return."""
        finals = [s.final_return_mean for s in seeds if s.final_return_mean is not None]
        mean, std = _mean_std(finals)
        best, _ = _mean_std([s.best_eval_return_mean for s in seeds if s.best_eval_return_mean is not None])
        judged, what = (best, "best eval return") if cell.judge == "best" else (mean, "eval return")
        solved = [s for s in seeds if s.solved]
        speeds = [s.steps_per_second for s in seeds if s.steps_per_second]
        failed = [s for s in seeds if s.status == "failed"]
        message = None
        if not seeds:
            message = f"cell {cell.key}: no seed ran"
        elif failed:
            first = (failed[0].error or "unknown error").strip().splitlines()[0]
            message = f"cell {cell.key}: seed {failed[0].seed} failed: {first}"
        elif judged is None:
            message = f"cell {cell.key}: no evaluation return was measured"
        elif judged < cell.min_return:
            message = f"cell {cell.key}: {what} {judged:.1f} < threshold {cell.min_return:.1f}"
        presets = [s.preset for s in seeds if s.preset is not None]
        steps, seconds, cpu = _to_threshold(seeds)
        return cls(
            cell=cell,
            seeds=seeds,
            ratio=ratio,
            zoo=zoo,
            preset=", ".join(dict.fromkeys(presets)) or None,
            final_return_mean=mean,
            final_return_std=std,
            best_return_mean=best,
            solved_seeds=len(solved),
            steps_to_threshold=steps,
            seconds_to_threshold=seconds,
            cpu_seconds_to_threshold=cpu,
            steps_per_second=statistics.median(speeds) if speeds else None,
            passed=message is None,
            message=message,
        )


class MachineInfo(StrictModel):
    """Where and when a benchmark ran."""

    date: str
    hostname: str
    platform: str
    cpu_model: str
    cores: int
    ram_gb: float
    load_average_start: list[float] = Field(default_factory=list, description="1, 5, 15 min, at the start.")
    load_average_end: list[float] = Field(default_factory=list)
    versions: dict[str, str | None] = Field(default_factory=dict)


class BaselineRow(StrictModel):
    """One cell now and in the baseline (None where one side has no value)."""

    cell: str
    steps_to_threshold: float | None = None
    baseline_steps_to_threshold: float | None = None
    seconds_to_threshold: float | None = None
    baseline_seconds_to_threshold: float | None = None
    steps_per_second: float | None = None
    baseline_steps_per_second: float | None = None
    final_return_mean: float | None = None
    baseline_final_return_mean: float | None = None

    @property
    def slowdown(self) -> float | None:
        """Env steps to threshold now over the baseline's (above 1: slower to learn)."""
        if self.steps_to_threshold is None or not self.baseline_steps_to_threshold:
            return None
        return self.steps_to_threshold / self.baseline_steps_to_threshold


class BaselineComparison(StrictModel):
    """The cells of a run next to a baseline results file, and what failed the slowdown limit."""

    source: str = Field(description="The baseline results file.")
    date: str = Field(description="When the baseline ran.")
    max_slowdown: float | None = None
    rows: list[BaselineRow] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)


class ZooRow(StrictModel):
    """One cell next to RL Zoo3's configuration of its algorithm x env, with polyrl / zoo ratios."""

    cell: str
    preset: str | None = None
    zoo_source: str
    zoo_missing: str | None = None
    zoo_budget_steps: int | None = None
    seeds: int = 0
    solved_seeds: int = 0
    zoo_seeds: int = 0
    zoo_solved_seeds: int = 0
    steps_to_threshold: float | None = None
    zoo_steps_to_threshold: float | None = None
    steps_ratio: float | None = Field(default=None, description="polyrl / zoo env steps to the threshold.")
    seconds_to_threshold: float | None = None
    zoo_seconds_to_threshold: float | None = None
    seconds_ratio: float | None = Field(default=None, description="polyrl / zoo training seconds to it.")
    cpu_seconds_to_threshold: float | None = None
    zoo_cpu_seconds_to_threshold: float | None = None
    cpu_ratio: float | None = Field(
        default=None, description="polyrl / zoo training CPU seconds to it (steadier on a loaded machine)."
    )


class ZooComparison(StrictModel):
    """The cells of a run next to RL Zoo3's configurations (`polyrl bench --baseline zoo`)."""

    zoo_version: str | None = None
    max_slowdown: float | None = None
    rows: list[ZooRow] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)


class BenchReport(StrictModel):
    """One `polyrl bench` run: settings, machine, every cell's result, and the failures."""

    format_version: int = 1
    slice: Slice
    command: str
    merged_commands: list[str] = Field(
        default_factory=list, description="The commands of the runs merged into this report."
    )
    seeds: int = Field(description="Seeds per cell (the most any cell has, for merged reports).")
    stop_at_threshold: bool
    machine: MachineInfo
    total_seconds: float = 0.0
    cells: list[CellResult] = Field(default_factory=list)
    baseline: BaselineComparison | None = Field(
        default=None, description="The cells next to a baseline results file (polyrl bench --baseline)."
    )
    zoo: ZooComparison | None = Field(
        default=None, description="The cells next to RL Zoo3's configurations (polyrl bench --baseline zoo)."
    )
    failures: list[str] = Field(
        default_factory=list, description="Every failing cell's message, then the baseline's failures."
    )
    passed: bool = True

    def with_verdict(self) -> BenchReport:
        """A copy whose failures and passed fields agree with the cells and the baseline comparison."""
        failures = [c.message or f"cell {c.cell.key} failed" for c in self.cells if not c.passed]
        if self.baseline is not None:
            failures += self.baseline.failures
        if self.zoo is not None:
            failures += self.zoo.failures
        return self.model_copy(update={"failures": failures, "passed": not failures})
