"""The play loop: the core steps the env itself, so step and episode hooks match on every backend."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from polyrl.records import EpisodeRecord, PlayResult, StepRecord

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.callbacks.context import RunContext
    from polyrl.callbacks.dispatch import CallbackDispatcher
    from polyrl.config import PlayConfig


def first_seed(agent: Agent, config: PlayConfig) -> int | None:
    """The reset seed of the first episode: the config's, else one derived from the agent's."""
    if config.seed is not None:
        return config.seed
    if agent.spec.seed is not None:
        # Fixed offset: evaluation episodes differ from training ones yet repeat across calls.
        return agent.spec.seed + 10_000
    return None


def run_play(agent: Agent, context: RunContext, dispatcher: CallbackDispatcher | None) -> PlayResult:
    """Play `context.config.episodes` episodes and return their statistics."""
    config: PlayConfig = context.config  # type: ignore[assignment]
    call = dispatcher.call if dispatcher is not None else None
    step_begin = dispatcher is not None and dispatcher.wants("on_step_begin")
    step_end = dispatcher is not None and dispatcher.wants("on_step_end")
    env = agent.env_source.make(render_mode=config.render_mode)
    seed = first_seed(agent, config)
    episodes: list[EpisodeRecord] = []
    try:
        if call:
            call("on_play_begin", context=context)
        index = 0
        while index < context.config.episodes and not context.stop_training:
            if call:
                call("on_episode_begin", context=context, episode=index)
            started = time.perf_counter()
            observation, _ = env.reset(seed=None if seed is None else seed + index)
            total, length, terminated, truncated = 0.0, 0, False, False
            while not (terminated or truncated):
                if step_begin:
                    call("on_step_begin", context=context, observation=observation)
                action = agent.act(observation, deterministic=config.deterministic)
                next_observation, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                length += 1
                if config.max_steps is not None and length >= config.max_steps and not terminated:
                    truncated = True
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
            context.episodes.append(record)
            if call:
                call("on_episode_end", context=context, episode=record)
            index += 1
        result = PlayResult.from_episodes(
            episodes, deterministic=config.deterministic, stopped_early=context.stop_training
        )
        if call:
            call("on_play_end", context=context, result=result)
        return result
    finally:
        env.close()
