"""Action noise and log_std_init reach Tianshou's objects as the spec asks; gSDE is refused."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tianshou")

import polyrl
from polyrl import Agent
from tianshou.data import Batch
from tianshou.exploration import GaussianNoise, OUNoise

OFF_POLICY = {"learning_starts": 50, "buffer_size": 1000}
OU = {"kind": "ornstein_uhlenbeck", "sigma": 0.5, "theta": 0.2, "dt": 0.05}


def agent(algorithm: str, section: dict) -> Agent:
    if algorithm in ("ppo", "a2c"):
        tiny: dict = {"iteration_steps": 64, "batch_size": 32}
    else:
        tiny, section = {"iteration_steps": 100, "batch_size": 32}, {**OFF_POLICY, **section}
    return Agent(
        backend="tianshou",
        algorithm=algorithm,
        env="Pendulum-v1",
        seed=0,
        preset="none",
        **{algorithm: section},
        **tiny,
    )


@pytest.mark.parametrize("algorithm", ["td3", "ddpg", "sac"])
def test_ou_noise_is_tianshous_with_the_spec_sigma_theta_and_dt(algorithm):
    made = agent(algorithm, {"action_noise": OU})
    noise = made.native.policy.exploration_noise
    assert isinstance(noise, OUNoise)
    # OUNoise keeps theta * dt and sigma * sqrt(dt)
    assert np.isclose(noise._alpha, 0.2 * 0.05) and np.isclose(noise._beta, 0.5 * np.sqrt(0.05))
    native = made.effective_hyperparameters().native
    assert native["exploration_noise"] == "OUNoise"
    assert (native["exploration_noise_sigma"], native["exploration_noise_theta"]) == (0.5, 0.2)
    assert np.isfinite(made.train(iterations=1).records[0].losses["loss"])


@pytest.mark.parametrize(
    ("algorithm", "section", "sigma"),
    [
        ("td3", {}, 0.1),  # polyrl's default for TD3/DDPG
        ("ddpg", {"action_noise_std": 0.3}, 0.3),
        ("sac", {"action_noise": {"kind": "gaussian", "sigma": 0.2}}, 0.2),
    ],
)
def test_gaussian_noise_has_the_sigma_asked(algorithm, section, sigma):
    made = agent(algorithm, section)
    noise = made.native.policy.exploration_noise
    assert isinstance(noise, GaussianNoise) and noise._sigma == sigma
    assert made.effective_hyperparameters().native["exploration_noise_sigma"] == sigma


def test_sac_without_noise_settings_has_none():
    assert agent("sac", {}).native.policy.exploration_noise is None


def test_sacs_noisy_actions_stay_in_the_actors_range():
    policy = agent("sac", {"action_noise": {"kind": "gaussian", "sigma": 5.0}}).native.policy
    noisy = policy.add_exploration_noise(np.full((256, 1), 0.9), Batch())
    assert noisy.min() >= -1.0 and noisy.max() <= 1.0 and len(np.unique(noisy)) > 2


def test_stochastic_play_leaves_the_ou_process_where_training_left_it():
    td3 = agent("td3", {"action_noise": OU})
    td3.train(iterations=1)
    noise = td3.native.policy.exploration_noise
    before = np.copy(noise._x)
    obs, _ = td3.env_source.make().reset(seed=0)
    for _ in range(5):
        td3.act(obs, deterministic=False)
    assert np.array_equal(noise._x, before)


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
def test_log_std_init_fills_the_actors_sigma_param(algorithm):
    made = agent(algorithm, {"log_std_init": -1.5})
    assert np.allclose(made.native.policy.actor.sigma_param.detach().numpy(), -1.5)
    native = made.effective_hyperparameters().native
    assert (native["sigma_param_init"], native["sigma_param_mean"]) == (-1.5, -1.5)
    default = agent(algorithm, {})
    assert np.allclose(default.native.policy.actor.sigma_param.detach().numpy(), 0.0)


@pytest.mark.parametrize("algorithm", ["ppo", "a2c", "sac"])
def test_gsde_is_refused_naming_the_backends_that_have_it(algorithm):
    with pytest.raises(polyrl.errors.UnsupportedOptionError) as caught:
        agent(algorithm, {"use_sde": True})
    message = str(caught.value)
    assert f"tianshou/{algorithm} does not support gSDE" in message and f"sb3/{algorithm}" in message
