"""The Stable-Baselines3 backend of polyrl.

Registered through the "polyrl" entry-point group, exactly as a third-party plugin would be.
This module imports neither stable_baselines3 nor torch: the driver does, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyrl.backend import AlgorithmInfo, BackendInfo, hookimpl

# Imported so pluggy finds the `polyrl bench` hooks on this module (they import SB3 only when called).
from polyrl_sb3.bench import polyrl_bench_cells  # noqa: F401
from polyrl_sb3.direct import polyrl_direct_training  # noqa: F401
from polyrl_sb3.zoo import polyrl_zoo_config, polyrl_zoo_training  # noqa: F401

if TYPE_CHECKING:
    from polyrl.envs import SpaceKind

# polyrl encodes every other observation space into a Box vector before a driver sees it;
# an "image" (rank-3 Box) gets polyrl's CNN as the policy's features extractor.
_OBS: list[SpaceKind] = ["box", "image"]
#: Optional spec features (polyrl.features) SB3 honours: gSDE and log_std_init on its Gaussian
#: policies (PPO, A2C; SAC's only with gSDE), action noise on the off-policy actors (SAC, TD3).
_GSDE = ["gsde", "log_std_init"]
_NOISE = ["action_noise.gaussian", "action_noise.ornstein_uhlenbeck"]
#: Values the core sets per iteration (polyrl.schedules): PPO's clip range (SB3 reads a schedule
#: of it at every update), the entropy coefficient of PPO/A2C, DQN's epsilon.
_PPO_SCHEDULES = ["schedule.clip_range", "schedule.ent_coef"]
#: Shared experience (polyrl.experience): every algorithm reports the transitions its learn()
#: collects; the off-policy ones also take external transitions into SB3's replay buffer.
_COLLECT = ["experience.collect"]
_REPLAY = ["experience.add", *_COLLECT]

BACKEND = BackendInfo(
    name="sb3",
    description="Stable-Baselines3: reliable PyTorch implementations of single-agent algorithms",
    driver="polyrl_sb3.driver:Sb3Driver",
    library="stable-baselines3",
    requires=["stable_baselines3", "torch"],
    install_hint="'polyrl[sb3]'",
    algorithms={
        "ppo": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["discrete", "box", "multi_discrete", "multi_binary"],
            on_policy=True,
            description="Proximal Policy Optimization",
            features=[*_GSDE, *_PPO_SCHEDULES, *_COLLECT],
        ),
        "a2c": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["discrete", "box", "multi_discrete", "multi_binary"],
            on_policy=True,
            description="Advantage Actor-Critic",
            features=[*_GSDE, "schedule.ent_coef", *_COLLECT],
        ),
        "dqn": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["discrete"],
            on_policy=False,
            description="Deep Q-Network",
            features=["schedule.epsilon", *_REPLAY],
        ),
        "sac": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["box"],
            on_policy=False,
            description="Soft Actor-Critic",
            features=[*_GSDE, *_NOISE, *_REPLAY],
        ),
        "td3": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["box"],
            on_policy=False,
            description="Twin Delayed DDPG",
            features=[*_NOISE, *_REPLAY],
        ),
    },
    deterministic=True,
    conformance_overrides={
        "ppo": {"iteration_steps": 128, "batch_size": 64, "ppo": {"n_epochs": 2}},
        "a2c": {"iteration_steps": 16},
        **{
            name: {
                "iteration_steps": 100,
                "batch_size": 32,
                name: {"learning_starts": 50, "buffer_size": 1000},
            }
            for name in ("dqn", "sac", "td3")
        },
    },
)


@hookimpl
def polyrl_backends() -> list[BackendInfo]:
    """Declare the sb3 backend."""
    return [BACKEND]
