"""Record -> Minari dataset -> prefill, on every off-policy algorithm of every built-in backend.

One dataset per env is recorded once (stochastic play of an SB3 agent, written as a Minari
dataset); every learner is created with `prefill=` that directory and must hold exactly the
dataset's rows (found again by the library's own sampler), train on top of them, and keep them
through a checkpoint.
"""

from __future__ import annotations

import numpy as np
import pytest
from polyrl import Agent
from polyrl.experience import read_experience

pytest.importorskip("minari")
pytest.importorskip("stable_baselines3")

CASES = [
    ("sb3", "dqn"),
    ("sb3", "sac"),
    ("sb3", "td3"),
    ("tianshou", "dqn"),
    ("tianshou", "sac"),
    ("tianshou", "td3"),
    ("tianshou", "ddpg"),
    ("rllib", "dqn"),
    ("rllib", "sac"),
]
ENV = {"dqn": "CartPole-v1", "sac": "Pendulum-v1", "td3": "Pendulum-v1", "ddpg": "Pendulum-v1"}
STEPS = 100  # one training iteration on top of the dataset


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A Minari dataset per env: 3 stochastic episodes (Pendulum's capped at 60 steps)."""
    root = tmp_path_factory.mktemp("datasets")
    found = {}
    for env, algorithm in (("CartPole-v1", "ppo"), ("Pendulum-v1", "ppo")):
        with Agent(backend="sb3", algorithm=algorithm, env=env, seed=5, preset="none") as agent:
            target = root / env.lower().replace("-", "_")
            agent.play(episodes=3, deterministic=False, max_steps=60, record=str(target))
        found[env] = str(target)
    return found


def learner(backend: str, algorithm: str, prefill: str) -> Agent:
    """A learner whose updates start after the dataset and one iteration (so sampling is cheap)."""
    section = {"buffer_size": 2_000, "learning_starts": 50, "train_freq": 50, "gradient_steps": 1}
    return Agent(
        backend=backend,
        algorithm=algorithm,
        env=ENV[algorithm],
        seed=0,
        preset="none",
        iteration_steps=STEPS,
        batch_size=32,
        prefill=prefill,
        **{algorithm: section},
    )


@pytest.mark.parametrize(("backend", "algorithm"), CASES, ids=[f"{b}-{a}" for b, a in CASES])
def test_a_recorded_minari_dataset_prefills_the_learner(backend, algorithm, datasets, tmp_path):
    pytest.importorskip({"sb3": "stable_baselines3", "tianshou": "tianshou", "rllib": "ray"}[backend])
    source = datasets[ENV[algorithm]]
    dataset = read_experience(source)
    agent = learner(backend, algorithm, source)
    try:
        assert agent.replay_size == len(dataset) and agent.env_steps == 0
        sampled = agent.sample_experience(64)
        known = {tuple(np.round(row, 4)) for row in dataset.observations}
        assert all(tuple(np.round(row, 4)) in known for row in sampled.observations)
        agent.train(total_steps=STEPS)
        assert agent.env_steps == STEPS and agent.replay_size == len(dataset) + STEPS
        agent.save(tmp_path / "checkpoint")
    finally:
        agent.close()
    loaded = Agent.load(tmp_path / "checkpoint")
    try:
        # Not prefilled again on load: the checkpoint's buffer already holds the dataset's rows.
        assert loaded.replay_size == len(dataset) + STEPS
    finally:
        loaded.close()
