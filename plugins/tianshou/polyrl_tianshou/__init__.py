"""The Tianshou 2.x backend of polyrl.

Registered through the "polyrl" entry-point group; this module imports neither tianshou nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyrl.backend import AlgorithmInfo, BackendInfo, hookimpl

# Imported so pluggy finds the `polyrl bench` hooks on this module (they import Tianshou only when called).
from polyrl_tianshou.bench import polyrl_bench_cells  # noqa: F401
from polyrl_tianshou.direct import polyrl_direct_training  # noqa: F401

if TYPE_CHECKING:
    from polyrl.envs import SpaceKind
    from pydantic import JsonValue

#: polyrl encodes every other observation into a Box vector; images get a CNN (encoders.CnnNet).
_OBS: list[SpaceKind] = ["box", "image"]
_TINY_OFF_POLICY: dict[str, JsonValue] = {"learning_starts": 50, "buffer_size": 1000}
#: Optional spec features (polyrl.features) Tianshou honours: exploration noise objects on the
#: continuous off-policy actors, and the initial log std of PPO/A2C's state-independent sigma.
#: No gSDE (Tianshou has none), no log_std_init for SAC (its sigma comes from the network).
_NOISE = ["action_noise.gaussian", "action_noise.ornstein_uhlenbeck"]
#: Shared experience (experience.py): every algorithm reports what it collects; the off-policy
#: ones also take external transitions into their VectorReplayBuffer.
_COLLECT = ["experience.collect"]
_ADD = ["experience.add", *_COLLECT]
#: Scheduled values (polyrl.schedules) the core sets per iteration: PPO's eps_clip and PPO/A2C's
#: ent_coef are plain attributes every update reads; DQN's epsilon is set per collection step.

BACKEND = BackendInfo(
    name="tianshou",
    description="Tianshou 2.x: modular PyTorch algorithms, driven through its low-level API",
    driver="polyrl_tianshou.driver:TianshouDriver",
    library="tianshou",
    requires=["tianshou", "torch"],
    install_hint="'polyrl[tianshou]'",
    algorithms={
        "ppo": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["discrete", "box"],
            on_policy=True,
            description="Proximal Policy Optimization",
            features=["log_std_init", "schedule.clip_range", "schedule.ent_coef", *_COLLECT],
        ),
        "a2c": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["discrete", "box"],
            on_policy=True,
            description="Advantage Actor-Critic",
            features=["log_std_init", "schedule.ent_coef", *_COLLECT],
        ),
        "dqn": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["discrete"],
            on_policy=False,
            description="Deep Q-Network (double Q-learning, Tianshou's default)",
            features=["schedule.epsilon", *_ADD],
        ),
        "sac": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["box", "discrete"],
            on_policy=False,
            description="Soft Actor-Critic (Tianshou's DiscreteSAC for Discrete actions)",
            features=[*_NOISE, *_ADD],
        ),
        "td3": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["box"],
            on_policy=False,
            description="Twin Delayed DDPG",
            features=[*_NOISE, *_ADD],
        ),
        "ddpg": AlgorithmInfo(
            observation_spaces=_OBS,
            action_spaces=["box"],
            on_policy=False,
            description="Deep Deterministic Policy Gradient",
            features=[*_NOISE, *_ADD],
        ),
    },
    deterministic=True,
    conformance_overrides={
        "ppo": {"iteration_steps": 128, "batch_size": 64, "ppo": {"n_epochs": 2}},
        "a2c": {"iteration_steps": 16},
        "dqn": {"iteration_steps": 100, "batch_size": 32, "dqn": _TINY_OFF_POLICY},
        "sac": {"iteration_steps": 100, "batch_size": 32, "sac": _TINY_OFF_POLICY},
        "td3": {"iteration_steps": 100, "batch_size": 32, "td3": _TINY_OFF_POLICY},
        "ddpg": {"iteration_steps": 100, "batch_size": 32, "ddpg": _TINY_OFF_POLICY},
    },
)


@hookimpl
def polyrl_backends() -> list[BackendInfo]:
    """Declare the tianshou backend."""
    return [BACKEND]
