"""Experience out of training and into replay buffers, compared row by row.

Each check is proven by a planted bug that fails it (tests/test_conformance_planted.py:
`collect_shifted` and `experience_counted`).
"""

from __future__ import annotations

import numpy as np

from polyrl_conformance.experience import (
    ADDED_ROWS,
    added_run,
    collected_run,
    episode_problems,
    unmatched_rows,
)
from polyrl_conformance.scenario import AlgorithmScenario


def test_experience_collect(scenario: AlgorithmScenario) -> None:
    """With a callback implementing on_experience, a 2-iteration run delivers per iteration as
    many transition rows as the record's iteration_env_steps; within each episode a row's
    next_observations equal the next row's observations; the episodes whose last row is
    terminated or truncated are the record's iteration_episodes and their summed rewards give
    its return_mean; observations have the agent's observation shape and actions lie in the
    action space. An algorithm that does not declare "experience.collect" must refuse the run
    with UnsupportedOptionError. *Catches:* rows shifted by a step, steps dropped or duplicated,
    the next episode's first observation given as an episode's last next_observations."""
    run = collected_run(scenario)
    if not run.declared:
        assert run.refused == "UnsupportedOptionError", (
            'an algorithm without the feature "experience.collect" must refuse a run with an '
            f"on_experience callback with UnsupportedOptionError; got {run.refused or 'no error'}"
        )
        return
    problems = episode_problems(run.batches, run.records)
    assert not problems, "; ".join(problems[:5])
    for batch in run.batches:
        shape = tuple(run.observation_space.shape)
        assert batch.observations.shape[1:] == shape, (
            f"observations have shape {batch.observations.shape[1:]}, the agent's space {shape}"
        )
        outside = [
            i
            for i, action in enumerate(batch.actions)
            if not run.action_space.contains(np.asarray(action, dtype=run.action_space.dtype))
        ]
        assert not outside, f"rows {outside[:5]} have actions outside {run.action_space}"


def test_experience_add(scenario: AlgorithmScenario) -> None:
    """A fresh agent takes 40 synthetic transitions (rewards 1000 + row): add_experience
    returns 40, replay_size grows by exactly 40, env_steps, iterations and episodes do not
    move; every row sample_experience draws is one of the added rows with its observation,
    next observation, action (within 1e-5) and terminated flag; a checkpoint keeps them (the
    loaded agent's replay_size and samples). An algorithm that does not declare
    "experience.add" must refuse add_experience with UnsupportedOptionError. *Catches:* added
    rows counted as env steps, rows stored apart from what the sampler reads, actions stored in
    another scale than the one read back, a checkpoint without them."""
    run = added_run(scenario)
    if not run.declared:
        assert run.refused == "UnsupportedOptionError", (
            'an algorithm without the feature "experience.add" must refuse add_experience with '
            f"UnsupportedOptionError; got {run.refused or 'no error'}"
        )
        return
    assert run.batch is not None and run.sampled is not None and run.loaded_sampled is not None
    assert run.added == ADDED_ROWS, f"add_experience returned {run.added} for {ADDED_ROWS} rows"
    before_size = run.before["replay_size"] or 0
    assert run.after["replay_size"] == before_size + ADDED_ROWS, (
        f"replay_size went from {before_size} to {run.after['replay_size']} after adding {ADDED_ROWS} rows"
    )
    moved = {
        k: (run.before[k], run.after[k])
        for k in ("env_steps", "iterations", "episodes")
        if run.before[k] != run.after[k]
    }
    assert not moved, f"adding experience moved counters (before, after): {moved}; they count env steps only"
    problems = unmatched_rows(run.batch, run.sampled)
    assert not problems, "; ".join(problems[:5])
    seen = len(set(np.round(run.sampled.rewards).tolist()))
    assert seen >= ADDED_ROWS // 2, (
        f"{len(run.sampled)} samples drew only {seen} of the {ADDED_ROWS} added rows"
    )
    assert run.loaded_size == run.after["replay_size"], (
        f"the checkpoint kept {run.loaded_size} of the buffer's {run.after['replay_size']} rows"
    )
    problems = unmatched_rows(run.batch, run.loaded_sampled)
    assert not problems, "after save and load: " + "; ".join(problems[:5])
