"""play() and evaluate(): episodes, hook order, the step cap."""

from __future__ import annotations

import pytest

from polyrl_conformance.scenario import (
    EVALUATE_EPISODES,
    EVALUATE_SEED,
    PLAY_EPISODES,
    PLAY_MAX_STEPS,
    AlgorithmScenario,
)


def test_play_hooks(scenario: AlgorithmScenario) -> None:
    """play() calls on_play_begin; per episode on_episode_begin, on_step_begin and on_step_end once
    per step, on_episode_end; then on_play_end: exactly this sequence."""
    run = scenario.played()
    expected = ["on_play_begin"]
    for episode in run.result.episodes:
        expected += ["on_episode_begin", *["on_step_begin", "on_step_end"] * episode.length, "on_episode_end"]
    expected.append("on_play_end")
    assert run.calls == expected


def test_play_episodes(scenario: AlgorithmScenario) -> None:
    """play(episodes=3) plays exactly 3 episodes indexed 0, 1, 2; each EpisodeRecord's return is the
    sum of the rewards its steps received and its length their number; the PlayResult's
    summary (mean, min, max, total steps) matches the episodes."""
    run = scenario.played()
    episodes = run.result.episodes
    assert [e.index for e in episodes] == list(range(PLAY_EPISODES))
    assert len(run.rewards) == PLAY_EPISODES
    for episode, rewards in zip(episodes, run.rewards, strict=True):
        assert episode.length == len(rewards)
        assert episode.episode_return == pytest.approx(sum(rewards))
    returns = [e.episode_return for e in episodes]
    assert run.result.return_mean == pytest.approx(sum(returns) / len(returns))
    assert (run.result.return_min, run.result.return_max) == (min(returns), max(returns))
    assert run.result.total_steps == sum(e.length for e in episodes)
    assert run.result.deterministic is True


def test_play_max_steps(scenario: AlgorithmScenario) -> None:
    """With max_steps=10 no episode is longer than 10 steps; an episode cut at the cap is marked
    truncated, not terminated; every episode ended by termination or truncation."""
    for episode in scenario.played().result.episodes:
        assert episode.length <= PLAY_MAX_STEPS, f"episode {episode.index} ran {episode.length} steps"
        assert episode.terminated or episode.truncated
        if episode.length == PLAY_MAX_STEPS and not episode.terminated:
            assert episode.truncated


def test_evaluate(scenario: AlgorithmScenario) -> None:
    """evaluate(episodes=2, max_steps=10, seed=5) plays 2 deterministic episodes within the cap, and a
    second identical call gives the same returns and lengths."""
    agent = scenario.trained().agent
    first = agent.evaluate(episodes=EVALUATE_EPISODES, max_steps=PLAY_MAX_STEPS, seed=EVALUATE_SEED)
    second = agent.evaluate(episodes=EVALUATE_EPISODES, max_steps=PLAY_MAX_STEPS, seed=EVALUATE_SEED)
    assert first.deterministic and len(first.episodes) == EVALUATE_EPISODES
    assert all(e.length <= PLAY_MAX_STEPS for e in first.episodes)
    assert [e.length for e in first.episodes] == [e.length for e in second.episodes]
    assert [e.episode_return for e in first.episodes] == pytest.approx(
        [e.episode_return for e in second.episodes]
    )
