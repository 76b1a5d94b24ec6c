"""The training loop: the core calls the driver one iteration at a time, callbacks in between."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from polyrl.config import PlayConfig
from polyrl.errors import CallbackError
from polyrl.experience.transfer import ExperienceTap
from polyrl.records import DriverReport, IterationRecord, TrainResult
from polyrl.schedules import AnySchedule, run_progress, spec_schedules

T = TypeVar("T")

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.callbacks.context import TrainContext
    from polyrl.config import TrainConfig
    from polyrl.run import Run


def _limit_reached(
    context: TrainContext, start_steps: int, run_iterations: int, started: float
) -> str | None:
    config = context.config
    if context.stop_training:
        return context.stop_reason or "stopped by a callback"
    if config.total_steps is not None and context.agent.env_steps - start_steps >= config.total_steps:
        return "total_steps reached"
    if config.iterations is not None and run_iterations >= config.iterations:
        return "iterations reached"
    if config.time_limit is not None and time.perf_counter() - started >= config.time_limit:
        return "time_limit reached"
    return None


def _horizon(context: TrainContext, start_steps: int, run_iterations: int) -> int | None:
    """The lifetime env steps this run is planned to end at, from the (changeable) config."""
    config = context.config
    if config.total_steps is not None:
        return start_steps + config.total_steps
    if config.iterations is not None:
        per_iteration = context.agent.effective_hyperparameters().iteration_steps
        remaining = max(config.iterations - run_iterations, 0)
        return context.agent.env_steps + remaining * per_iteration
    return None


def _apply_schedules(
    run: Run,
    context: TrainContext,
    schedules: dict[str, AnySchedule],
    start: tuple[int, int, float],
) -> None:
    """Set every scheduled value for the coming iteration, from the progress of this train() call.

    Before on_iteration_begin, so a callback that sets the learning rate there runs after and
    wins; once anyone set it through Agent.learning_rate (the user, LearningRateScheduler,
    ReduceLROnPlateau), the spec's learning-rate schedule stops for this agent: the hand wins.
    """
    start_steps, run_iterations, started = start
    horizon = _horizon(context, start_steps, run_iterations)
    elapsed = time.perf_counter() - started
    progress = run_progress(start_steps, run.agent.env_steps, horizon, elapsed, context.config.time_limit)
    driver = run.parts.driver
    for name, schedule in schedules.items():
        value = schedule.value_at(progress)
        if name == "learning_rate" and run.parts.learning_rate_by_hand:
            continue
        setter = (
            functools.partial(driver.set_learning_rate, value)
            if name == "learning_rate"
            else functools.partial(driver.set_scheduled, name, value)
        )
        method = "set_learning_rate" if name == "learning_rate" else "set_scheduled"
        run.timed("driver", method, setter, f"{name}={value:g}")


def _held_values(run: Run, schedules: dict[str, AnySchedule]) -> dict[str, float]:
    """The scheduled values the library holds (learning_rate has its own record field)."""
    driver = run.parts.driver
    held: dict[str, float] = {}
    for name in schedules:
        if name == "learning_rate":
            continue
        value = driver.get_scheduled(name)
        if value is not None:
            held[name] = float(value)
    return held


def make_record(
    agent: Agent, report: DriverReport, iteration_seconds: float, wall_seconds: float
) -> IterationRecord:
    """Turn a driver's report into the common-vocabulary record."""
    returns = [float(r) for r, _ in report.episodes]
    metrics = dict(report.metrics)
    replay_size = agent.replay_size
    if replay_size is not None:
        metrics["replay_size"] = float(replay_size)
    lengths = [int(n) for _, n in report.episodes]
    return IterationRecord(
        iteration=agent.iterations,
        env_steps=agent.env_steps,
        iteration_env_steps=report.env_steps,
        episodes=agent.episodes,
        iteration_episodes=len(returns),
        return_mean=sum(returns) / len(returns) if returns else None,
        return_min=min(returns) if returns else None,
        return_max=max(returns) if returns else None,
        episode_length_mean=sum(lengths) / len(lengths) if lengths else None,
        learning_rate=agent.learning_rate,
        losses=dict(report.losses),
        metrics=metrics,
        iteration_seconds=iteration_seconds,
        wall_seconds=wall_seconds,
        steps_per_second=report.env_steps / iteration_seconds if iteration_seconds > 0 else 0.0,
    )


def _evaluate_into(
    agent: Agent, record: IterationRecord, config: TrainConfig
) -> dict[str, float | int | None]:
    play = PlayConfig(
        episodes=config.eval_episodes,
        max_steps=config.eval_max_steps,
        seed=config.eval_seed,
        deterministic=True,
    )
    result = agent.play(play)
    numbers: dict[str, float | int | None] = {
        "iteration": record.iteration,
        "env_steps": record.env_steps,
        "eval_return_mean": result.return_mean,
        "eval_return_std": result.return_std,
        "eval_return_min": result.return_min,
        "eval_return_max": result.return_max,
        "eval_length_mean": result.length_mean,
    }
    record.metrics.update(
        {k: float(v) for k, v in numbers.items() if k.startswith("eval_") and v is not None}
    )
    return numbers


class TrainingLoop:
    """One train() call, run one iteration at a time: `begin`, `step` until None, `finish`.

    `run_training` runs it to its end; `polyrl.cooperate` steps several agents' loops in turn,
    so each agent keeps its own callbacks, schedules and limits while they share experience.
    A CallbackError raised from any step carries the records so far in `.result`.
    """

    def __init__(self, run: Run, context: TrainContext) -> None:
        self.run, self.context = run, context
        self.started = time.perf_counter()
        self.start_steps = run.agent.env_steps
        self.run_iterations = 0
        self.schedules = spec_schedules(run.parts.spec)
        self.reason: str | None = None
        """Why the loop ended (a limit, a stop request); None while it goes on."""
        self.result: TrainResult | None = None
        """What `finish` returned."""
        # Collection costs memory and time, so it is on only while a callback takes the transitions.
        self.tap = ExperienceTap(run) if run.callbacks.wants("on_experience") else None

    def _result(self, reason: str) -> TrainResult:
        agent, context = self.run.agent, self.context
        return TrainResult(
            records=list(context.history),
            evaluations=list(context.evaluations),
            iterations=agent.iterations,
            env_steps=agent.env_steps,
            run_env_steps=agent.env_steps - self.start_steps,
            wall_seconds=time.perf_counter() - self.started,
            stop_reason=reason,
        )

    def _guarded(self, body: Callable[[], T]) -> T:
        """Run `body`; on any error stop collecting, and give a CallbackError the records so far."""
        try:
            return body()
        except CallbackError as exc:
            exc.result = self._result(f"callback error in {exc.hook}")
            self._stop_tap()
            raise
        except BaseException:
            self._stop_tap()
            raise

    def _stop_tap(self) -> None:
        if self.tap is not None:
            self.tap.stop()

    def begin(self) -> None:
        """Start collecting (when a callback takes transitions), then on_train_begin."""
        if self.tap is not None:
            self.tap.start()  # before on_train_begin: an algorithm that cannot report fails plainly
        self._guarded(lambda: self.run.callbacks.call("on_train_begin", context=self.context))

    def step(self) -> IterationRecord | None:
        """One iteration with its callbacks and evaluation; None (and `reason` set) at a limit."""
        if self.reason is not None:
            return None
        limits = (self.start_steps, self.run_iterations, self.started)
        self.reason = _limit_reached(self.context, *limits)
        if self.reason is not None:
            return None
        return self._guarded(self._iteration)

    def _iteration(self) -> IterationRecord:
        run, context, agent, callbacks = self.run, self.context, self.run.agent, self.run.callbacks
        if self.schedules:
            _apply_schedules(
                run, context, self.schedules, (self.start_steps, self.run_iterations, self.started)
            )
        callbacks.call("on_iteration_begin", context=context, iteration=agent.iterations + 1)
        horizon = _horizon(context, self.start_steps, self.run_iterations)
        if self.tap is not None:
            self.tap.follow()  # a callback's Agent.restore may have swapped the driver
        began = time.perf_counter()
        report = run.train_iteration(horizon)
        now = time.perf_counter()
        self.run_iterations += 1
        # Taken now: evaluation plays in other envs, but nothing else may run before the take.
        batch = self.tap.take() if self.tap is not None else None
        record = make_record(agent, report, now - began, now - self.started)
        record.metrics.update(_held_values(run, self.schedules))
        config = context.config
        if config.eval_every and self.run_iterations % config.eval_every == 0:
            context.evaluations.append(_evaluate_into(agent, record, config))
        context.history.append(record)
        if batch is not None:
            callbacks.call("on_experience", context=context, batch=batch)
        callbacks.call("on_iteration_end", context=context, record=record)
        return record

    def stop(self, reason: str) -> None:
        """End the loop here: no further step runs, and `finish` reports `reason`."""
        if self.reason is None:
            self.reason = reason

    def finish(self, reason: str | None = None) -> TrainResult:
        """Stop collecting, call on_train_end and return the result (`reason` if no limit ended it)."""
        self._stop_tap()
        final = self._result(self.reason or reason or "stopped")
        self.run.callbacks.call("on_train_end", context=self.context, result=final)
        self.result = final
        return final


def run_training(run: Run, context: TrainContext) -> TrainResult:
    """Train until a limit of `context.config` or a stop request; return the run's records."""
    loop = TrainingLoop(run, context)
    loop.begin()
    while loop.step() is not None:
        pass
    return loop.finish()
