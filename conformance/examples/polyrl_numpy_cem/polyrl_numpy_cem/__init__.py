"""An example third-party polyrl backend: the cross-entropy method on a NumPy policy network.

This module is what the "polyrl" entry point names; it only declares the backend. The driver
(`polyrl_numpy_cem.driver`) is imported when an agent is first built.
"""

from __future__ import annotations

from polyrl.backend import AlgorithmInfo, BackendInfo, hookimpl

BACKEND = BackendInfo(
    name="cem",
    description="Example: the cross-entropy method searching a NumPy policy network's weights",
    driver="polyrl_numpy_cem.driver:CemDriver",
    library="numpy",
    requires=["numpy"],
    install_hint="polyrl-numpy-cem",
    algorithms={
        "cem": AlgorithmInfo(
            observation_spaces=["box"],
            action_spaces=["discrete", "box"],
            on_policy=True,
            description="Cross-entropy method (gradient-free policy search)",
        ),
    },
    deterministic=True,
    # 4 candidates x 25 steps: one iteration ends one 25-step episode of the suite's own env.
    conformance_overrides={"cem": {"iteration_steps": 100, "backend_options": {"population": 4}}},
)


@hookimpl
def polyrl_backends() -> list[BackendInfo]:
    """Declare the cem backend."""
    return [BACKEND]
