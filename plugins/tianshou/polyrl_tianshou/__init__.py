"""The Tianshou 2.x backend of polyrl.

Registered through the "polyrl" entry-point group; this module imports neither tianshou nor torch.
"""

from __future__ import annotations

from polyrl import AlgorithmInfo, BackendInfo, hookimpl

_OBS = ["box"]

BACKEND = BackendInfo(
    name="tianshou",
    description="Tianshou 2.x: modular PyTorch algorithms, driven through its low-level API",
    driver="polyrl_tianshou.driver:TianshouDriver",
    library="tianshou",
    requires=["tianshou", "torch"],
    install_hint="'polyrl[tianshou]'",
    algorithms={
        "ppo": AlgorithmInfo(observation_spaces=_OBS, action_spaces=["discrete", "box"], on_policy=True),
        "a2c": AlgorithmInfo(observation_spaces=_OBS, action_spaces=["discrete", "box"], on_policy=True),
        "dqn": AlgorithmInfo(observation_spaces=_OBS, action_spaces=["discrete"], on_policy=False),
        "sac": AlgorithmInfo(observation_spaces=_OBS, action_spaces=["box"], on_policy=False),
        "td3": AlgorithmInfo(observation_spaces=_OBS, action_spaces=["box"], on_policy=False),
        "ddpg": AlgorithmInfo(observation_spaces=_OBS, action_spaces=["box"], on_policy=False),
    },
    deterministic=True,
)


@hookimpl
def polyrl_backends() -> list[BackendInfo]:
    """Declare the tianshou backend."""
    return [BACKEND]
