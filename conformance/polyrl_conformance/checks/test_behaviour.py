"""The state behind the API: learning rate, budgets, losses, seeding, envs, replay buffer, resume.

Each check is proven by a planted bug that fails it (tests/test_conformance_planted.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyrl_conformance.behaviour import COMMON_LOSSES, RESUME_AFTER, BehaviourRuns, same_parameters
from polyrl_conformance.scenario import AlgorithmScenario, actions_equal


@pytest.fixture(scope="session")
def behaviour(scenario: AlgorithmScenario) -> BehaviourRuns:
    """The behaviour runs of one backend x algorithm (made lazily, shared by the checks)."""
    return BehaviourRuns(scenario)


def test_lr_reaches_optimizer(behaviour: BehaviourRuns) -> None:
    """Once updates have started, an iteration at learning rate 0 leaves every trainable parameter
    (what the optimizers update, read with parameters()) exactly unchanged, and the record and
    read-back say 0; with the learning rate set back, the next iteration changes them. A learning
    rate that is stored but never reaches the optimizer fails here."""
    probe = behaviour.learning_rate_probe()
    assert probe.warmup_records[-1].losses, (
        f"no update reported a loss within {len(probe.warmup_records)} iterations; expected updates to start"
    )
    assert probe.read_back_zero == 0.0, f"set the learning rate to 0, read back {probe.read_back_zero}"
    assert probe.zero_record.learning_rate == 0.0, f"record at lr 0 says {probe.zero_record.learning_rate}"
    changed = same_parameters(probe.before_zero, probe.after_zero, exact=True)
    assert not changed, f"an iteration at learning rate 0 changed parameters: {changed[:5]}"
    assert same_parameters(probe.after_zero, probe.after_restore, exact=True), (
        "with the learning rate restored, an iteration left every parameter unchanged: "
        "the learning rate does not reach the optimizer, or no update ran"
    )


def test_iteration_budget(scenario: AlgorithmScenario, behaviour: BehaviourRuns) -> None:
    """Every iteration collects the declared iteration_steps (effective_hyperparameters(), within
    the n_envs rounding); a stop requested in on_iteration_end takes effect before the step budget
    is reached; total_steps is overshot by less than one iteration; a time limit ends the run after
    the first iteration that ends past it (every earlier iteration ended before it)."""
    trained = scenario.trained()
    n_envs = scenario.spec.n_envs
    declared = trained.iteration_steps
    for record in trained.result.records:
        assert abs(record.iteration_env_steps - declared) < n_envs, (
            f"iteration {record.iteration} collected {record.iteration_env_steps} env steps; "
            f"the driver declares iteration_steps={declared} (n_envs={n_envs})"
        )
    total = trained.config.total_steps
    assert total is not None
    overshoot = trained.result.run_env_steps - total
    assert overshoot < declared, f"total_steps={total} overshot by {overshoot} >= one iteration ({declared})"
    twin = scenario.twin()
    assert len(twin.result.records) == 1 and twin.result.run_env_steps < total, (
        f"stop requested after iteration 1: ran {len(twin.result.records)} iteration(s), "
        f"{twin.result.run_env_steps} env steps of a budget of {total}"
    )
    timed = behaviour.time_limited()
    assert timed.records, "a time-limited run ran no iteration"
    if timed.stop_reason == "time_limit reached":
        early = [r.wall_seconds for r in timed.records[:-1] if r.wall_seconds >= timed.limit]
        assert not early, f"the run went on after passing time_limit={timed.limit} s (at {early[0]:.3f} s)"
        assert timed.records[-1].wall_seconds >= timed.limit
    else:
        assert timed.stop_reason == "iterations reached", f"time-limited run ended by {timed.stop_reason!r}"
        # The cap is checked before the clock: the last iteration may have passed the limit too.
        late = [r.wall_seconds for r in timed.records[:-1] if r.wall_seconds >= timed.limit]
        assert not late, f"the run went on after passing time_limit={timed.limit} s (at {late[0]:.3f} s)"


def test_losses_reported(behaviour: BehaviourRuns) -> None:
    """Once updates have started, every iteration reports at least one loss of the common
    vocabulary (loss, policy_loss, value_loss, entropy_loss, q_loss, actor_loss, critic_loss), and
    every loss and metric is finite."""
    probe = behaviour.learning_rate_probe()
    records = [*probe.warmup_records, probe.zero_record]
    started = [r for r in records if r.losses]
    assert started, f"no loss reported in {len(records)} iterations (expected one once updates start)"
    for record in records[records.index(started[0]) :]:
        common = sorted(set(record.losses) & set(COMMON_LOSSES))
        assert common, f"iteration {record.iteration} reports losses {sorted(record.losses)}, none common"
        for name, value in {**record.losses, **record.metrics}.items():
            assert math.isfinite(value), f"iteration {record.iteration}: {name} = {value}"


def _statistics(records: list) -> list[dict[str, float | int | None]]:
    """Per record: steps, episodes, return and length statistics and every loss, by name."""
    names = ("iteration_env_steps", "iteration_episodes", "return_mean", "episode_length_mean")
    return [{**{n: getattr(r, n) for n in names}, **r.losses} for r in records]


def _differences(a: list[dict], b: list[dict]) -> list[str]:
    """Where two runs' statistics differ (relative 1e-6), e.g. "iteration 2: loss 0.31 vs 0.32"."""
    if len(a) != len(b):
        return [f"{len(a)} records vs {len(b)}"]
    found = []
    for index, (x, y) in enumerate(zip(a, b, strict=True), start=1):
        for name in sorted(set(x) | set(y)):
            u, v = x.get(name), y.get(name)
            same = u == v if u is None or v is None else math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-9)
            if not same:
                found.append(f"iteration {index}: {name} {u!r} vs {v!r}")
    return found


def test_seeding_interleaved(behaviour: BehaviourRuns) -> None:
    """Two agents with the same spec and seed, built one after the other and then trained
    alternately, iteration by iteration, in one process, end with the same statistics and
    parameters (each as if it were alone: the seeding check compares runs made one after the
    other); an agent with another seed differs in its first iteration or its parameters. Only for
    backends that declare determinism: each agent needs its own random state."""
    runs = behaviour.interleaved()
    differences = _differences(_statistics(runs.second), _statistics(runs.first))
    assert not differences, f"two interleaved agents of one seed trained differently: {differences[:4]}"
    differing = same_parameters(runs.second_parameters, runs.first_parameters)
    assert not differing, f"two interleaved agents of one seed end with other parameters: {differing[:5]}"
    assert same_parameters(runs.other_parameters, runs.first_parameters_after_one) or _differences(
        _statistics(runs.other_seed), _statistics(runs.first[:1])
    ), "an agent with another seed trained exactly like seed 0: the seed is ignored"


def test_n_envs(behaviour: BehaviourRuns) -> None:
    """With n_envs=2 the agent trains: effective_hyperparameters() reports 2 envs, each iteration
    collects the declared iteration_steps (within the rounding to a multiple of 2), the records'
    steps and episodes add up to the agent's counters, and act() answers."""
    many = behaviour.many_envs()
    assert many.agent.effective_hyperparameters().n_envs == 2
    for record in many.records:
        assert abs(record.iteration_env_steps - many.declared_iteration_steps) < 2, (
            f"iteration {record.iteration}: {record.iteration_env_steps} steps, declared "
            f"{many.declared_iteration_steps}"
        )
    assert sum(r.iteration_env_steps for r in many.records) == many.agent.env_steps
    assert sum(r.iteration_episodes for r in many.records) == many.agent.episodes
    assert [r.iteration for r in many.records] == [1, 2]


def test_replay_buffer(scenario: AlgorithmScenario) -> None:
    """An off-policy algorithm reports its replay buffer's size (replay_size, also the metric of
    every record), at most the env steps collected; the size is equal after save and load, and
    the resumed agent's buffer grows from it. An on-policy algorithm reports none."""
    trained = scenario.trained()
    agent = trained.agent
    on_policy = scenario.info.algorithms[scenario.case.algorithm].on_policy
    if on_policy:
        assert agent.replay_size is None, f"an on-policy algorithm reports replay_size={agent.replay_size}"
        return
    size = agent.replay_size
    assert size is not None, "an off-policy algorithm reports no replay_size"
    assert 0 < size <= agent.env_steps, f"replay_size {size} after {agent.env_steps} env steps"
    assert trained.result.records[-1].metrics.get("replay_size") == size
    scenario.checkpoint()
    reloaded = scenario.reloaded().agent
    assert reloaded.replay_size == size, (
        f"replay buffer of {size} transitions has {reloaded.replay_size} after load"
    )
    resumed = scenario.resumed().records[0]
    grown = resumed.metrics.get("replay_size")
    assert grown is not None and grown >= size, (
        f"after one more iteration the buffer holds {grown} (< {size})"
    )


def test_resume_equivalence(behaviour: BehaviourRuns) -> None:
    """An agent saved, loaded and trained M more iterations ends with the same counters, learning
    rate and replay size as its twin that trained on without save/load; right after load (here,
    and for each backend's first algorithm in a fresh Python process too) it holds the saver's
    counters, learning rate, replay size, and deterministic actions on a fixed batch (equal;
    within 1e-6 for continuous actions)."""
    runs = behaviour.resume()
    assert runs.reloaded.counters() == runs.saved.counters(), (
        f"{runs.reloaded.counters()} != {runs.saved.counters()}"
    )
    assert runs.reloaded.learning_rate == pytest.approx(runs.saved.learning_rate, rel=1e-9)
    assert runs.reloaded_replay_size == runs.saved_replay_size, (
        f"replay size {runs.saved_replay_size} saved, {runs.reloaded_replay_size} loaded"
    )
    assert actions_equal(runs.reloaded.actions, runs.saved.actions)
    resumed, twin = runs.resumed, runs.uninterrupted
    for name in ("env_steps", "iterations", "replay_size"):
        assert getattr(resumed, name) == getattr(twin, name), (
            f"{name}: {getattr(resumed, name)} after save/load/continue, {getattr(twin, name)} without"
        )
    assert resumed.learning_rate == pytest.approx(twin.learning_rate, rel=1e-9)
    fresh = runs.fresh_process
    if fresh is None:  # checked on the backend's first algorithm (loading a library costs seconds)
        return
    loaded = fresh["loaded"]
    assert (loaded["env_steps"], loaded["iterations"]) == (runs.saved.env_steps, runs.saved.iterations)
    assert loaded["learning_rate"] == pytest.approx(runs.saved.learning_rate, rel=1e-9)
    assert loaded["replay_size"] == runs.saved_replay_size
    assert actions_equal(np.asarray(loaded["actions"]), runs.saved.actions), (
        "actions differ in a fresh process"
    )
    after = fresh["after"]
    assert (after["env_steps"], after["iterations"], after["replay_size"]) == (
        twin.env_steps,
        twin.iterations,
        twin.replay_size,
    ), f"{RESUME_AFTER} iterations after loading in a fresh process the counters differ from the twin's"


def test_resume_exact(behaviour: BehaviourRuns) -> None:
    """On the suite's fixed-start env, whose episodes end exactly at iteration boundaries, an agent
    loaded from a checkpoint (in this process, and for each backend's first algorithm in a fresh
    one) continues exactly as its twin
    that never stopped: right after load it holds the saver's parameters, and after M more
    iterations the same losses, deterministic actions and parameters (rtol 1e-5, atol 1e-6).
    Optimizer state, replay buffer, native step counters and random state must all be in the
    checkpoint. Only for backends that declare determinism."""
    runs = behaviour.resume()
    differing = same_parameters(runs.reloaded_parameters, runs.saved_parameters, exact=True)
    assert not differing, f"right after load the parameters differ from the saver's: {differing[:5]}"
    resumed, twin = runs.resumed, runs.uninterrupted
    differing = same_parameters(resumed.parameters, twin.parameters)
    assert not differing, (
        f"{RESUME_AFTER} iterations after load the parameters differ from the uninterrupted twin's: "
        f"{differing[:5]} (losses {resumed.losses} vs {twin.losses})"
    )
    differences = _differences(resumed.losses, twin.losses)
    assert not differences, f"losses after load differ from the twin's: {differences[:4]}"
    assert actions_equal(resumed.actions, twin.actions)
    if runs.fresh_process is not None:
        fresh = same_parameters(runs.fresh_process["parameters"], twin.parameters)
        assert not fresh, f"continued in a fresh process, the parameters differ from the twin's: {fresh[:5]}"
