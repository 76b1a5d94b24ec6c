"""The RLlib backend of polyrl (Ray, new API stack).

Registered through the "polyrl" entry-point group; this module imports neither ray nor torch.
"""

from __future__ import annotations

from polyrl import AlgorithmInfo, BackendInfo, hookimpl

BACKEND = BackendInfo(
    name="rllib",
    description="RLlib (Ray) on its new API stack: scalable, local by default, a Ray cluster on request",
    driver="polyrl_rllib.driver:RllibDriver",
    library="ray",
    requires=["ray", "torch"],
    install_hint="'polyrl[rllib]'",
    algorithms={
        "ppo": AlgorithmInfo(
            observation_spaces=["box"], action_spaces=["discrete", "box"], on_policy=True,
            description="Proximal Policy Optimization",
        ),
        "dqn": AlgorithmInfo(
            observation_spaces=["box"], action_spaces=["discrete"], on_policy=False,
            description="Deep Q-Network (double, dueling by RLlib default)",
        ),
        "sac": AlgorithmInfo(
            observation_spaces=["box"], action_spaces=["box"], on_policy=False,
            description="Soft Actor-Critic",
        ),
    },
    deterministic=False,
)


@hookimpl
def polyrl_backends() -> list[BackendInfo]:
    """Declare the rllib backend."""
    return [BACKEND]
