"""Schedules on the three libraries: one tiny run per backend and algorithm, values per iteration.

Each run is 4 iterations of 64 env steps (total_steps = 256), so the progress at the start of
iteration k is k / 4 and every expected value below is the schedule's value there. The metrics
are what the drivers read back from the library objects (SB3's clip-range schedule, Tianshou's
eps_clip, RLlib's Learner config and schedulers, ...), not what the core asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from polyrl import Agent, TrainConfig
from schedule_backend import schedule_agent

LIBRARIES = {"sb3": "stable_baselines3", "tianshou": "tianshou", "rllib": "ray.rllib"}
STEPS, ITERATIONS = 64, 4
LEARNING_RATE = {"kind": "linear", "start": 1e-3, "end": 2e-4}
SECTIONS = {
    "ppo": {
        "n_epochs": 1,
        "clip_range": {"kind": "linear", "start": 0.3, "end": 0.1},
        "ent_coef": {"kind": "exponential", "start": 0.01, "end": 0.0001},
    },
    "a2c": {"ent_coef": "lin_0.02"},
    "dqn": {
        "learning_starts": 0,
        "buffer_size": 500,
        "epsilon": {"kind": "linear", "start": 1.0, "end": 0.2},
    },
}
EXPECTED = {
    "ppo": {
        "clip_range": [0.3, 0.25, 0.2, 0.15],
        "ent_coef": [0.01, 0.01 * 0.01**0.25, 0.001, 0.01 * 0.01**0.75],
    },
    "a2c": {"ent_coef": [0.02, 0.015, 0.01, 0.005]},
    "dqn": {"epsilon": [1.0, 0.8, 0.6, 0.4]},
}
LEARNING_RATES = [1e-3, 8e-4, 6e-4, 4e-4]
CASES = [
    ("sb3", "ppo"),
    ("sb3", "a2c"),
    ("sb3", "dqn"),
    ("tianshou", "ppo"),
    ("tianshou", "a2c"),
    ("tianshou", "dqn"),
    ("rllib", "ppo"),
    ("rllib", "dqn"),
]


def scheduled_agent(backend: str, algorithm: str) -> Agent:
    if importlib.util.find_spec(LIBRARIES[backend].split(".")[0]) is None:
        pytest.skip(f"{LIBRARIES[backend]} is not installed")
    batch = {"batch_size": 32} if algorithm != "a2c" else {}
    return schedule_agent(
        backend,
        algorithm,
        iteration_steps=STEPS,
        learning_rate=LEARNING_RATE,
        **batch,
        **{algorithm: SECTIONS[algorithm]},
    )


@pytest.mark.parametrize(("backend", "algorithm"), CASES, ids=[f"{b}-{a}" for b, a in CASES])
def test_each_iteration_reports_the_value_the_library_held(backend: str, algorithm: str) -> None:
    with scheduled_agent(backend, algorithm) as agent:
        assert agent.effective_hyperparameters().iteration_steps == STEPS
        records = agent.train(TrainConfig(total_steps=STEPS * ITERATIONS)).records
        assert [r.env_steps for r in records] == [STEPS * (k + 1) for k in range(ITERATIONS)]
        assert [r.learning_rate for r in records] == pytest.approx(LEARNING_RATES, rel=1e-5)
        for name, values in EXPECTED[algorithm].items():
            assert [r.metrics[name] for r in records] == pytest.approx(values, rel=1e-5), name
        # The optimizer keeps the last value after the run (nothing resets it to the spec's start).
        assert agent.effective_hyperparameters().learning_rate == pytest.approx(LEARNING_RATES[-1], rel=1e-5)


def test_a_loaded_agent_keeps_the_schedule_and_starts_it_over_with_its_next_train_call(
    tmp_path: Path,
) -> None:
    with scheduled_agent("sb3", "dqn") as agent:
        agent.train(TrainConfig(total_steps=2 * STEPS))
        agent.save(tmp_path / "agent")
        held = agent.native.exploration_rate
    loaded = Agent.load(tmp_path / "agent")
    with loaded:
        assert loaded.spec.dqn is not None and loaded.spec.dqn.epsilon is not None
        # As saved: the values at progress 0.5 of the 2-iteration call (its second iteration).
        assert held == pytest.approx(0.6) and loaded.native.exploration_rate == pytest.approx(held)
        assert loaded.learning_rate == pytest.approx(6e-4)
        records = loaded.train(TrainConfig(total_steps=STEPS * ITERATIONS)).records
        assert [r.metrics["epsilon"] for r in records] == pytest.approx(EXPECTED["dqn"]["epsilon"])
