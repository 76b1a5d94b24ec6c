"""gSDE learns: SB3 SAC with RL Zoo3's MountainCarContinuous settings, written in polyrl's spec.

MountainCarContinuous-v0 pays -0.1 x action^2 per step and +100 at the flag, so an agent that never
finds the flag learns to stand still (return ~0): a mean of 90 over 10 deterministic episodes
means it drives up the hill. Measured (seed 0, 2 CPU cores): solved at ~20k env steps, about
3 minutes of training (docs/exploration.md), hence `slow`.
"""

from __future__ import annotations

import pytest

pytest.importorskip("stable_baselines3")

from polyrl import Agent

#: RL Zoo3 hyperparams/sac.yml, MountainCarContinuous-v0 (use_expln left out: docs/exploration.md).
ZOO_SAC = {
    "learning_rate": 3e-4,
    "gamma": 0.9999,
    "batch_size": 512,
    "network": {"hidden": [64, 64], "activation": "relu"},
    "sac": {
        "buffer_size": 50_000,
        "ent_coef": 0.1,
        "train_freq": 32,
        "gradient_steps": 32,
        "tau": 0.01,
        "learning_starts": 0,
        "use_sde": True,
        "log_std_init": -3.67,
    },
}
BUDGET = 50_000  # the Zoo's n_timesteps for this entry
CHUNK = 5_000


@pytest.mark.slow
def test_sb3_sac_with_gsde_solves_mountain_car_continuous():
    agent = Agent(
        backend="sb3", algorithm="sac", env="MountainCarContinuous-v0", seed=0, preset="none", **ZOO_SAC
    )
    assert agent.effective_hyperparameters().native["use_sde"] is True
    best = float("-inf")
    while agent.env_steps < BUDGET and best < 90:
        agent.train(total_steps=CHUNK)
        best = max(best, agent.evaluate(episodes=10).return_mean or float("-inf"))
    assert best >= 90, f"best mean eval return {best:.1f} after {agent.env_steps} env steps"
