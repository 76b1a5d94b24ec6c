"""RLlib's new API stack has no gSDE, action noise or log_std_init: refused, naming the takers."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.rllib")

import polyrl
from polyrl import Agent

OU = {"kind": "ornstein_uhlenbeck", "sigma": 0.5}


@pytest.mark.parametrize(
    ("algorithm", "section", "feature", "takers"),
    [
        ("sac", {"use_sde": True}, "gsde", ["sb3/sac", "sb3/ppo"]),
        ("sac", {"action_noise": OU}, "action_noise.ornstein_uhlenbeck", ["sb3/sac", "tianshou/td3"]),
        (
            "sac",
            {"action_noise": {"kind": "gaussian", "sigma": 0.2}},
            "action_noise.gaussian",
            ["sb3/td3", "tianshou/sac"],
        ),
        ("ppo", {"log_std_init": -1.0}, "log_std_init", ["sb3/ppo", "tianshou/ppo"]),
    ],
)
def test_exploration_settings_are_refused_before_ray_starts(algorithm, section, feature, takers):
    with pytest.raises(polyrl.errors.UnsupportedOptionError) as caught:
        Agent(backend="rllib", algorithm=algorithm, env="Pendulum-v1", preset="none", **{algorithm: section})
    message = str(caught.value)
    assert f"rllib/{algorithm} does not support" in message and repr(feature) in message
    assert all(taker in message for taker in takers) and "rllib/" not in message.split("that do:")[1]
