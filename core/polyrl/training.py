"""The training loop: the core calls the driver one iteration at a time, callbacks in between."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

from polyrl.config import PlayConfig
from polyrl.errors import CallbackError
from polyrl.records import DriverReport, IterationRecord, TrainResult
from polyrl.schedules import AnySchedule, run_progress, spec_schedules

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


def run_training(run: Run, context: TrainContext) -> TrainResult:
    """Train until a limit of `context.config` or a stop request; return the run's records."""
    agent, callbacks = run.agent, run.callbacks
    started = time.perf_counter()
    start_steps = agent.env_steps
    run_iterations = 0
    schedules = spec_schedules(run.parts.spec)

    def result(reason: str) -> TrainResult:
        return TrainResult(
            records=list(context.history),
            evaluations=list(context.evaluations),
            iterations=agent.iterations,
            env_steps=agent.env_steps,
            run_env_steps=agent.env_steps - start_steps,
            wall_seconds=time.perf_counter() - started,
            stop_reason=reason,
        )

    try:
        callbacks.call("on_train_begin", context=context)
        while (reason := _limit_reached(context, start_steps, run_iterations, started)) is None:
            if schedules:
                _apply_schedules(run, context, schedules, (start_steps, run_iterations, started))
            callbacks.call("on_iteration_begin", context=context, iteration=agent.iterations + 1)
            horizon = _horizon(context, start_steps, run_iterations)
            began = time.perf_counter()
            report = run.train_iteration(horizon)
            now = time.perf_counter()
            run_iterations += 1
            record = make_record(agent, report, now - began, now - started)
            record.metrics.update(_held_values(run, schedules))
            config = context.config
            if config.eval_every and run_iterations % config.eval_every == 0:
                context.evaluations.append(_evaluate_into(agent, record, config))
            context.history.append(record)
            callbacks.call("on_iteration_end", context=context, record=record)
    except CallbackError as exc:
        exc.result = result(f"callback error in {exc.hook}")
        raise
    final = result(reason)
    callbacks.call("on_train_end", context=context, result=final)
    return final
