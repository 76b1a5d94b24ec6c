"""Exploration settings in the spec: gSDE, log_std_init, action noise; their checks and features."""

from __future__ import annotations

import polyrl
import pytest
from polyrl import AgentSpec
from polyrl.backend import AlgorithmInfo, BackendInfo
from polyrl.exploration import (
    GaussianNoiseSpec,
    OrnsteinUhlenbeckNoiseSpec,
    action_noise,
    check_action_space,
)
from polyrl.features import check_features, used_features
from pydantic import ValidationError

OU = {"kind": "ornstein_uhlenbeck", "sigma": 0.5}


def spec(algorithm: str, **section) -> AgentSpec:
    return AgentSpec(backend="sb3", algorithm=algorithm, env="Pendulum-v1", **{algorithm: section})


def test_ou_noise_takes_sb3s_theta_and_dt_unless_set():
    sac = spec("sac", action_noise=OU).sac
    assert sac is not None
    assert sac.action_noise == OrnsteinUhlenbeckNoiseSpec(kind="ornstein_uhlenbeck", sigma=0.5)
    assert (sac.action_noise.theta, sac.action_noise.dt) == (0.15, 0.01)
    custom = spec("td3", action_noise={**OU, "theta": 0.3, "dt": 0.05}).td3
    assert custom is not None and isinstance(custom.action_noise, OrnsteinUhlenbeckNoiseSpec)
    assert (custom.action_noise.theta, custom.action_noise.dt) == (0.3, 0.05)


def test_a_spec_with_exploration_settings_round_trips_through_json():
    original = spec("sac", use_sde=True, sde_sample_freq=8, log_std_init=-3.67, action_noise=OU)
    again = AgentSpec.model_validate_json(original.model_dump_json())
    assert again == original
    ddpg = spec("ddpg", action_noise={"kind": "gaussian", "sigma": 0.2})
    assert AgentSpec.model_validate_json(ddpg.model_dump_json()) == ddpg


@pytest.mark.parametrize(
    ("noise", "message"),
    [
        ({"sigma": 0.3}, 'needs "kind": "gaussian" or "ornstein_uhlenbeck"'),
        ({"kind": "pink", "sigma": 0.3}, 'needs "kind": "gaussian" or "ornstein_uhlenbeck"'),
        ({"kind": "gaussian", "sigma": -0.1}, "greater than or equal to 0"),
        ({"kind": "gaussian", "sigma": 0.1, "theta": 0.2}, "not a field of GaussianNoiseSpec"),
        ({"kind": "ornstein_uhlenbeck", "sigma": 0.1, "dt": 0}, "greater than 0"),
        ({"kind": "ornstein_uhlenbeck", "sigma": True}, "expected a number, got the boolean"),
    ],
)
def test_malformed_noise_is_refused_with_what_is_wrong(noise, message):
    with pytest.raises(ValidationError, match=message):
        spec("td3", action_noise=noise)


def test_action_noise_std_is_the_gaussian_shorthand_and_not_both():
    td3 = spec("td3", action_noise_std=0.3).td3
    assert action_noise(td3) == GaussianNoiseSpec(sigma=0.3)
    assert action_noise(spec("td3").td3) is None
    with pytest.raises(ValidationError, match="set one of them, not both"):
        spec("td3", action_noise_std=0.3, action_noise=OU)


def test_only_off_policy_actors_take_action_noise():
    with pytest.raises(ValidationError, match="not a field of PPOSection"):
        spec("ppo", action_noise=OU)
    with pytest.raises(ValidationError, match="not a field of SACSection"):
        spec("sac", action_noise_std=0.3)


def test_gsde_fields_belong_to_ppo_a2c_and_sac_only():
    for algorithm in ("ppo", "a2c", "sac"):
        section = spec(algorithm, use_sde=True).section()
        assert section is not None and section.model_dump()["use_sde"] is True
    with pytest.raises(ValidationError, match="not a field of TD3Section"):
        spec("td3", use_sde=True)


@pytest.mark.parametrize("frequency", [-1, 1, 64])
def test_sde_sample_freq_takes_sb3s_values(frequency):
    section = spec("ppo", use_sde=True, sde_sample_freq=frequency).ppo
    assert section is not None and section.sde_sample_freq == frequency


@pytest.mark.parametrize("frequency", [0, -2])
def test_other_sde_sample_freqs_are_refused(frequency):
    with pytest.raises(ValidationError, match=r"must be -1 .* or >= 1"):
        spec("ppo", use_sde=True, sde_sample_freq=frequency)


@pytest.mark.parametrize("use_sde", [None, False])
def test_sde_sample_freq_without_gsde_is_refused(use_sde):
    with pytest.raises(ValidationError, match="sde_sample_freq applies to gSDE only"):
        spec("a2c", use_sde=use_sde, sde_sample_freq=4)


def test_log_std_init_stands_alone_on_ppo_but_needs_gsde_on_sac():
    ppo = spec("ppo", log_std_init=-1.0).ppo
    assert ppo is not None and ppo.log_std_init == -1.0
    with pytest.raises(ValidationError, match="set use_sde=true, or remove log_std_init"):
        spec("sac", log_std_init=-3.0)
    sac = spec("sac", use_sde=True, log_std_init=-3.0).sac
    assert sac is not None and sac.log_std_init == -3.0
    with pytest.raises(ValidationError, match="less than or equal to 20"):
        spec("ppo", log_std_init=50.0)


@pytest.mark.parametrize(
    ("algorithm", "section", "features"),
    [
        ("ppo", {"use_sde": True}, ["gsde"]),
        ("ppo", {"use_sde": False}, []),
        ("a2c", {"use_sde": True, "sde_sample_freq": 16, "log_std_init": 0.0}, ["gsde", "log_std_init"]),
        ("sac", {"action_noise": OU}, ["action_noise.ornstein_uhlenbeck"]),
        ("sac", {"action_noise": {"kind": "gaussian", "sigma": 0.1}}, ["action_noise.gaussian"]),
        ("td3", {"action_noise_std": 0.2}, ["action_noise.gaussian"]),
        ("ddpg", {"action_noise": {"kind": "ornstein_uhlenbeck", "sigma": 0.0}}, []),
        ("td3", {}, []),
    ],
)
def test_the_features_a_spec_uses(algorithm, section, features):
    assert used_features(spec(algorithm, **section)) == features


def test_a_backend_without_the_feature_refuses_it_naming_the_backends_that_have_it():
    plain = BackendInfo(
        name="plain",
        description="declares no optional feature",
        driver="plain:Driver",
        library="numpy",
        requires=["numpy"],
        install_hint="numpy",
        algorithms={"ppo": AlgorithmInfo(action_spaces=["box"], on_policy=True)},
    )
    with pytest.raises(polyrl.errors.UnsupportedOptionError) as caught:
        check_features(plain, spec("ppo", use_sde=True))
    message = str(caught.value)
    assert "plain/ppo does not support gSDE" in message and "'gsde'" in message
    # the built-in sb3 plugin declares gSDE for PPO, A2C and SAC; tianshou and rllib do not
    assert all(f"sb3/{name}" in message for name in ("ppo", "a2c", "sac"))
    assert "tianshou/" not in message and "rllib/" not in message
    check_features(plain, spec("ppo", use_sde=False))  # gSDE off: nothing to support


@pytest.mark.parametrize(
    ("algorithm", "section"),
    [
        ("ppo", {"use_sde": True}),
        ("a2c", {"log_std_init": -1.0}),
        ("ppo", {"log_std_init": 0.0}),  # 0.0 is a setting, not "unset"
        ("sac", {"action_noise": OU}),
    ],
)
def test_exploration_settings_on_discrete_actions_are_refused(algorithm, section):
    discrete = AgentSpec(algorithm=algorithm, env="CartPole-v1", **{algorithm: section})
    with pytest.raises(polyrl.errors.UnsupportedSpaceError, match="continuous \\(Box\\) actions only"):
        check_action_space(discrete, "discrete")
    check_action_space(discrete, "box")  # the same settings on Box actions pass
    check_action_space(AgentSpec(algorithm=algorithm, env="CartPole-v1", **{algorithm: {}}), "discrete")
