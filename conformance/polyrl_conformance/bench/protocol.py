"""The bench's measuring protocol for one seed, whoever trains it: polyrl, or a reference run.

One protocol for both arms of a comparison (polyrl's agent, RL Zoo3's configuration through the
library directly), so their numbers mean the same: the trainer reports each iteration (env steps
so far, its own wall and CPU seconds, the training episodes' mean return); after the first
iteration that ends past each multiple of the cell's `eval_every_steps`, the cell's deterministic
evaluation episodes run (their time is the benchmark's, never the training's); the first
evaluation reaching the solve threshold is remembered, and with `stop_at_threshold` the trainer
is told to stop. Once solved, a twentieth of the budget is cadence enough for the curve.

No backend library is imported here: a trainer hands `iteration` a function that plays the
episodes; `ThresholdTracker` is the protocol as a callback of polyrl's own training loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polyrl.callbacks.base import Callback

from polyrl_conformance.bench.cells import BenchCell
from polyrl_conformance.bench.records import CurvePoint, SeedResult

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.callbacks.context import RunContext
    from polyrl.records import IterationRecord

#: Evaluation episode i of seed s resets its env with seed s + EVAL_SEED_OFFSET + i: polyrl's own
#: rule (`polyrl.playing.first_seed`), so a reference run plays the same evaluation episodes.
EVAL_SEED_OFFSET = 10_000
#: Training points a seed's result keeps at most (besides its evaluations).
CURVE_POINTS = 500

#: Plays the cell's evaluation episodes; returns their mean and std return.
Play = Callable[[], tuple[float | None, float | None]]


@dataclass(frozen=True)
class Trained:
    """What a trainer reports when it is done: env steps trained, seconds building, why it stopped."""

    env_steps: int
    setup_seconds: float
    stop_reason: str | None


def thin_curve(curve: list[CurvePoint], points: int = CURVE_POINTS) -> list[CurvePoint]:
    """At most about `points` points: every evaluation, the last point, and evenly spaced others.

    Keeps result files small when iterations are tiny (an A2C of 5 env steps per iteration);
    progress.csv still has every iteration.
    """
    if len(curve) <= points:
        return list(curve)
    stride = -(-len(curve) // points)
    return [
        p
        for i, p in enumerate(curve)
        if i % stride == 0 or p.eval_return_mean is not None or i == len(curve) - 1
    ]


class SeedProtocol:
    """Evaluation cadence, training clocks and the first crossing of the threshold, for one seed.

    `started` is when the seed began (building included): the wall clock to the threshold counts
    from it. `time_limit` (training seconds) ends a trainer that honours `stop` early.
    """

    def __init__(
        self, cell: BenchCell, stop_at_threshold: bool, started: float, time_limit: float | None = None
    ) -> None:
        self.cell = cell
        self.stop_at_threshold = stop_at_threshold
        self.started = started
        self.time_limit = time_limit
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self.eval_seconds = 0.0
        self.iterations = 0
        self.next_eval = cell.eval_every_steps
        self.curve: list[CurvePoint] = []
        #: (env steps, training seconds, wall seconds, training CPU seconds) at the first crossing
        self.solved_at: tuple[int, float, float, float] | None = None

    def iteration(
        self, env_steps: int, seconds: float, cpu_seconds: float, return_mean: float | None, play: Play
    ) -> CurvePoint:
        """Note one training iteration; evaluate when the cadence says so. Returns its curve point."""
        self.iterations += 1
        self.train_seconds += seconds
        self.train_cpu_seconds += cpu_seconds
        point = CurvePoint(env_steps=env_steps, train_seconds=self.train_seconds, return_mean=return_mean)
        self.curve.append(point)
        if env_steps >= self.next_eval:
            every = self.cell.eval_every_steps
            if self.solved_at is not None:
                every = max(every, self.cell.budget_steps // 20)
            while self.next_eval <= env_steps:
                self.next_eval += every
            self.evaluate(point, play)
        return point

    def evaluate(self, point: CurvePoint, play: Play) -> None:
        """Play the evaluation episodes and note the result on `point` (their time is not training's)."""
        began = time.perf_counter()
        mean, std = play()
        self.eval_seconds += time.perf_counter() - began
        point.eval_return_mean, point.eval_return_std = mean, std
        if self.solved_at is None and mean is not None and mean >= self.cell.solve_threshold:
            wall = time.perf_counter() - self.started
            self.solved_at = (point.env_steps, point.train_seconds, wall, self.train_cpu_seconds)

    @property
    def stop_reason(self) -> str | None:
        """Why the trainer should stop now (None: go on)."""
        if self.solved_at is not None and self.stop_at_threshold:
            return f"solve threshold {self.cell.solve_threshold:g} reached"
        if self.time_limit is not None and self.train_seconds >= self.time_limit:
            return f"time limit of {self.time_limit:g} s of training reached"
        return None

    def finish(self, play: Play) -> None:
        """The final evaluation, if the cadence missed the last iteration."""
        if self.curve and self.curve[-1].eval_return_mean is None:
            self.evaluate(self.curve[-1], play)

    def result(
        self, seed: SeedResult, env_steps: int, setup_seconds: float, stop_reason: str | None
    ) -> SeedResult:
        """`seed` (status, seed, directory) with everything this protocol measured."""
        evaluated = [p.eval_return_mean for p in self.curve if p.eval_return_mean is not None]
        final = next((p for p in reversed(self.curve) if p.eval_return_mean is not None), None)
        solved = self.solved_at
        return seed.model_copy(
            update={
                "status": "done",
                "env_steps": env_steps,
                "iterations": self.iterations,
                "setup_seconds": setup_seconds,
                "train_seconds": self.train_seconds,
                "train_cpu_seconds": self.train_cpu_seconds,
                "eval_seconds": self.eval_seconds,
                "steps_per_second": env_steps / self.train_seconds if self.train_seconds else None,
                "stop_reason": stop_reason,
                "final_return_mean": final.eval_return_mean if final else None,
                "final_return_std": final.eval_return_std if final else None,
                "best_eval_return_mean": max(evaluated) if evaluated else None,
                "solved": solved is not None,
                "steps_to_threshold": solved[0] if solved else None,
                "seconds_to_threshold": solved[1] if solved else None,
                "wall_seconds_to_threshold": solved[2] if solved else None,
                "cpu_seconds_to_threshold": solved[3] if solved else None,
                "curve": thin_curve(self.curve),
            }
        )


class ThresholdTracker(Callback):
    """The bench's protocol (`protocol.SeedProtocol`) for a seed polyrl trains, as a callback.

    The training clock is the sum of the iterations' own seconds (the driver's work only), so
    the evaluations, which are the benchmark's and not the training's, never count; the CPU
    clock sums this process's CPU time from each iteration's start to its end (steadier than
    wall time on a machine shared with other jobs). Evaluation numbers go into the iteration's
    record under eval_* (so progress.csv has them) before later callbacks see it.
    """

    def __init__(self, cell: BenchCell, stop_at_threshold: bool, started: float) -> None:
        # No time limit here: the agent's TrainConfig carries it.
        self.protocol = SeedProtocol(cell, stop_at_threshold, started)
        self._iteration_cpu = 0.0

    @staticmethod
    def player(agent: Agent, episodes: int) -> Play:
        """Plays `episodes` deterministic episodes of the agent (polyrl's evaluation seeds)."""

        def play() -> tuple[float | None, float | None]:
            result = agent.evaluate(episodes=episodes)
            return result.return_mean, result.return_std

        return play

    def on_iteration_begin(self, context: RunContext, iteration: int) -> None:
        self._iteration_cpu = time.process_time()

    def on_iteration_end(self, context: RunContext, record: IterationRecord) -> None:
        play = self.player(context.agent, self.protocol.cell.eval_episodes)
        cpu = time.process_time() - self._iteration_cpu
        point = self.protocol.iteration(
            record.env_steps, record.iteration_seconds, cpu, record.return_mean, play
        )
        if point.eval_return_mean is None:
            return
        record.metrics["eval_return_mean"] = float(point.eval_return_mean)
        record.metrics["eval_return_std"] = float(point.eval_return_std or 0.0)
        reason = self.protocol.stop_reason
        if reason is not None:
            context.stop(reason)
