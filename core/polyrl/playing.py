"""The play loop: the core steps the env itself, so step and episode hooks match on every backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from polyrl.experience.play_recorder import PlayRecorder
from polyrl.records import EpisodeRecord, PlayResult, StepRecord

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.callbacks.context import PlayContext
    from polyrl.config import PlayConfig
    from polyrl.run import Run


def first_seed(agent: Agent, config: PlayConfig) -> int | None:
    """The reset seed of the first episode: the config's, else one derived from the agent's."""
    if config.seed is not None:
        return config.seed
    if agent.spec.seed is not None:
        # Fixed offset: evaluation episodes differ from training ones yet repeat across calls.
        return agent.spec.seed + 10_000
    return None


def _api(run: Run, target: str, method: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call `fn(*args, **kwargs)`, reported to on_api_call (with an argument summary) when listened to."""
    if not run.reports_calls:
        return fn(*args, **kwargs)
    summary = ", ".join([*map(_short, args), *(f"{k}={_short(v)}" for k, v in kwargs.items())])
    return run.timed(target, method, lambda: fn(*args, **kwargs), summary)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_play(run: Run, context: PlayContext) -> PlayResult:
    """Play `context.config.episodes` episodes and return their statistics."""
    agent, call = run.agent, run.callbacks.call
    step_begin = run.callbacks.wants("on_step_begin")
    step_end = run.callbacks.wants("on_step_end")
    env = None
    episodes: list[EpisodeRecord] = []
    try:
        call("on_play_begin", context=context)
        # The env is built after on_play_begin so a callback may still change the config there
        # (a movie recorder asks for render_mode="rgb_array").
        config = context.config
        seed = first_seed(agent, config)
        recorder = None if config.record is None else PlayRecorder(config.record, agent, config.deterministic)
        env = _api(run, "env", "make", agent.env_source.make, render_mode=config.render_mode, training=False)
        context.env = env
        index = 0
        while index < context.config.episodes and not context.stop_training:
            call("on_episode_begin", context=context, index=index)
            started = time.perf_counter()
            reset_seed = None if seed is None else seed + index
            observation, _ = _api(run, "env", "reset", env.reset, seed=reset_seed)
            total, length, terminated, truncated = 0.0, 0, False, False
            while not (terminated or truncated):
                if step_begin:
                    call("on_step_begin", context=context, observation=observation)
                action = _api(
                    run, "driver", "act", agent.act, observation, deterministic=config.deterministic
                )
                next_observation, reward, terminated, truncated, info = _api(
                    run, "env", "step", env.step, action
                )
                total += float(reward)
                length += 1
                if config.max_steps is not None and length >= config.max_steps and not terminated:
                    truncated = True
                if recorder is not None:
                    recorder.add(index, observation, action, reward, next_observation, terminated, truncated)
                if step_end:
                    call(
                        "on_step_end",
                        context=context,
                        step=StepRecord(
                            episode=index,
                            step=length - 1,
                            observation=observation,
                            action=action,
                            reward=float(reward),
                            next_observation=next_observation,
                            terminated=bool(terminated),
                            truncated=bool(truncated),
                            info=dict(info),
                        ),
                    )
                observation = next_observation
                if context.stop_training:
                    break
            record = EpisodeRecord(
                index=index,
                episode_return=total,
                length=length,
                terminated=bool(terminated),
                truncated=bool(truncated),
                seconds=time.perf_counter() - started,
            )
            episodes.append(record)
            context.episode_records.append(record)
            call("on_episode_end", context=context, episode=record)
            index += 1
        result = PlayResult.from_episodes(
            episodes, deterministic=config.deterministic, stopped_early=context.stop_training
        )
        written = None if recorder is None else recorder.write()
        if written is not None:
            result = result.model_copy(update={"recorded": str(written)})
        call("on_play_end", context=context, result=result)
        return result
    finally:
        context.env = None
        if env is not None:
            _api(run, "env", "close", env.close)
