"""gSDE, log_std_init and action noise reach Stable-Baselines3's objects as the spec asks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from polyrl import Agent
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

OFF_POLICY = {"learning_starts": 50, "buffer_size": 1000}
OU = {"kind": "ornstein_uhlenbeck", "sigma": 0.5, "theta": 0.2, "dt": 0.05}


def agent(algorithm: str, section: dict, **fields) -> Agent:
    tiny = (
        {"iteration_steps": 100, "batch_size": 32}
        if algorithm in ("sac", "td3")
        else {"iteration_steps": 64, "batch_size": 32}
    )
    if algorithm in ("sac", "td3"):
        section = {**OFF_POLICY, **section}
    if algorithm == "a2c":
        tiny = {"iteration_steps": 16}
    return Agent(
        backend="sb3",
        algorithm=algorithm,
        env="Pendulum-v1",
        seed=0,
        preset="none",
        **{algorithm: section},
        **tiny,
        **fields,
    )


def test_sac_gets_gsde_its_log_std_and_ou_noise_and_trains_with_them():
    sac = agent("sac", {"use_sde": True, "sde_sample_freq": 4, "log_std_init": -2.5, "action_noise": OU})
    model = sac.native
    assert (model.use_sde, model.sde_sample_freq) == (True, 4)
    log_std = model.policy.actor.log_std.detach().numpy()
    assert log_std.size > 1 and np.allclose(log_std, -2.5)  # gSDE's (features x actions) matrix
    noise = model.action_noise
    assert isinstance(noise, OrnsteinUhlenbeckActionNoise)
    assert np.allclose(noise._sigma, [0.5]) and (noise._theta, noise._dt) == (0.2, 0.05)
    native = sac.effective_hyperparameters().native
    assert {k: native[k] for k in ("use_sde", "sde_sample_freq", "log_std_init", "use_expln")} == {
        "use_sde": True,
        "sde_sample_freq": 4,
        "log_std_init": -2.5,
        "use_expln": False,
    }
    assert (native["action_noise"], native["action_noise_sigma"]) == ("OrnsteinUhlenbeckActionNoise", 0.5)
    assert (native["action_noise_theta"], native["action_noise_dt"]) == (0.2, 0.05)
    record = sac.train(iterations=1).records[0]
    assert record.env_steps == 100 and np.isfinite(record.losses["loss"])


def test_sac_without_settings_has_no_noise_and_no_gsde():
    model = agent("sac", {}).native
    assert model.action_noise is None and model.use_sde is False
    native = agent("sac", {}).effective_hyperparameters().native
    assert not {"use_sde", "action_noise", "log_std_init"} & set(native)


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
def test_ppo_and_a2c_take_log_std_init_with_and_without_gsde(algorithm):
    plain = agent(algorithm, {"log_std_init": -1.5}).native
    assert plain.use_sde is False and np.allclose(plain.policy.log_std.detach().numpy(), -1.5)
    sde = agent(algorithm, {"use_sde": True, "sde_sample_freq": 8, "log_std_init": -0.5})
    assert (sde.native.use_sde, sde.native.sde_sample_freq) == (True, 8)
    assert np.allclose(sde.native.policy.log_std.detach().numpy(), -0.5)
    assert sde.effective_hyperparameters().native["log_std_init"] == -0.5
    assert np.isfinite(sde.train(iterations=1).records[0].losses["loss"])


@pytest.mark.parametrize(
    ("section", "kind", "sigma"),
    [
        ({}, NormalActionNoise, 0.1),  # polyrl's TD3 default
        ({"action_noise_std": 0.3}, NormalActionNoise, 0.3),
        ({"action_noise": {"kind": "gaussian", "sigma": 0.25}}, NormalActionNoise, 0.25),
        ({"action_noise": OU}, OrnsteinUhlenbeckActionNoise, 0.5),
    ],
)
def test_td3_noise_is_of_the_kind_and_sigma_asked(section, kind, sigma):
    td3 = agent("td3", section)
    assert type(td3.native.action_noise) is kind and np.allclose(td3.native.action_noise._sigma, sigma)
    assert td3.effective_hyperparameters().native["action_noise_sigma"] == sigma


def test_sigma_zero_means_no_noise():
    assert agent("td3", {"action_noise": {"kind": "gaussian", "sigma": 0.0}}).native.action_noise is None


def test_a_loaded_agent_explores_as_the_saved_one(tmp_path):
    sac = agent("sac", {"use_sde": True, "log_std_init": -2.0, "action_noise": OU})
    sac.train(iterations=1)
    sac.save(tmp_path / "sac")
    loaded = Agent.load(tmp_path / "sac")
    assert loaded.effective_hyperparameters().native["use_sde"] is True
    assert isinstance(loaded.native.action_noise, OrnsteinUhlenbeckActionNoise)
    assert np.allclose(
        loaded.native.policy.actor.log_std.detach().numpy(), sac.native.policy.actor.log_std.detach().numpy()
    )
