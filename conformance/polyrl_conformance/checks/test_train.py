"""train(): callback order, step budget, the statistics vocabulary, the stop flag."""

from __future__ import annotations

import polyrl

from polyrl_conformance.scenario import STOP_REASON, AlgorithmScenario, finite

_COUNTERS = ("iteration", "env_steps", "iteration_env_steps", "episodes", "iteration_episodes")
_ALWAYS_FINITE = ("learning_rate", "iteration_seconds", "wall_seconds", "steps_per_second")
_EPISODE_STATS = ("return_mean", "return_min", "return_max", "episode_length_mean")


def test_callback_order(scenario: AlgorithmScenario) -> None:
    """train() calls on_train_begin, then on_iteration_begin and on_iteration_end once per iteration,
    then on_train_end: exactly this sequence, nothing else."""
    run = scenario.trained()
    iterations = len(run.result.records)
    assert iterations >= 1, "train() ran no iteration"
    expected = ["on_train_begin", *["on_iteration_begin", "on_iteration_end"] * iterations, "on_train_end"]
    assert run.calls == expected


def test_train_steps(scenario: AlgorithmScenario) -> None:
    """train(total_steps=T) stops once the run's env steps reach T and overshoots T by less than its
    last iteration; every iteration collects steps; the counters of the records, the
    TrainResult and the agent agree (iterations numbered 1, 2, ...; env_steps cumulative)."""
    run = scenario.trained()
    records = run.result.records
    total = run.config.total_steps
    assert total is not None
    steps = [r.iteration_env_steps for r in records]
    assert all(s > 0 for s in steps), f"iterations that collected no env steps: {steps}"
    assert sum(steps) >= total, (
        f"the run stopped at {sum(steps)} env steps, before the requested {total} "
        f"(stop reason: {run.result.stop_reason!r})"
    )
    assert sum(steps[:-1]) < total, (
        f"an iteration ran although {total} steps were already reached: per-iteration steps {steps}"
    )
    assert run.result.stop_reason == "total_steps reached"
    assert [r.iteration for r in records] == list(range(1, len(records) + 1))
    assert [r.env_steps for r in records] == [sum(steps[: i + 1]) for i in range(len(steps))], (
        "record.env_steps must be the agent's lifetime count: previous + iteration_env_steps"
    )
    assert run.result.run_env_steps == sum(steps)
    assert run.result.env_steps == records[-1].env_steps == run.agent.env_steps
    assert run.result.iterations == len(records) == run.agent.iterations


def test_metrics(scenario: AlgorithmScenario) -> None:
    """Every IterationRecord carries every name of polyrl.COMMON_METRICS: counters are non-negative
    integers, learning rate and timings finite; return and length statistics are finite (with
    min <= mean <= max) when an episode ended in the iteration and None otherwise; every loss
    and extra metric is finite."""
    records = scenario.trained().result.records
    episodes = 0
    for record in records:
        flat = record.flat()
        where = f"iteration {record.iteration}"
        missing = [name for name in polyrl.COMMON_METRICS if name not in flat]
        assert not missing, f"{where}: missing common metrics {missing}"
        for name in _COUNTERS:
            value = flat[name]
            assert isinstance(value, int) and value >= 0, f"{where}: {name}={value!r}"
        for name in _ALWAYS_FINITE:
            assert finite(flat[name]), f"{where}: {name}={flat[name]!r} is not finite"
        if record.iteration_episodes > 0:
            for name in _EPISODE_STATS:
                assert finite(flat[name]), f"{where}: {name}={flat[name]!r} although episodes ended"
            low, mean, high = record.return_min, record.return_mean, record.return_max
            assert low is not None and mean is not None and high is not None  # finite: checked above
            assert low <= mean <= high
            length = record.episode_length_mean
            assert length is not None and length > 0
        else:
            assert all(flat[name] is None for name in _EPISODE_STATS), (
                f"{where}: episode statistics without episodes: { {n: flat[n] for n in _EPISODE_STATS} }"
            )
        for group, values in (("loss", record.losses), ("metric", record.metrics)):
            bad = {k: v for k, v in values.items() if not finite(v)}
            assert not bad, f"{where}: non-finite {group} values {bad}"
        episodes += record.iteration_episodes
        assert record.episodes == episodes, f"{where}: episodes={record.episodes}, expected {episodes}"


def test_stop_flag(scenario: AlgorithmScenario) -> None:
    """A callback that calls context.stop() in on_iteration_end ends training right after that
    iteration — before the step budget is reached — and on_train_end is still called; the
    TrainResult carries the callback's reason."""
    twin = scenario.twin()
    assert len(twin.result.records) == 1, f"{len(twin.result.records)} iterations ran after the stop flag"
    assert twin.calls == ["on_train_begin", "on_iteration_begin", "on_iteration_end", "on_train_end"]
    assert twin.result.stop_reason == STOP_REASON
    assert twin.result.iterations == 1
    assert twin.result.env_steps == twin.result.records[0].env_steps
