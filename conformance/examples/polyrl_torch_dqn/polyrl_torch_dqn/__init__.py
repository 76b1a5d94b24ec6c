"""An example third-party polyrl backend: DQN written directly in PyTorch.

This module is what the "polyrl" entry point names; it only declares the backend and imports
neither torch nor gymnasium. The driver (`polyrl_torch_dqn.driver`) is imported when an agent is
first built.
"""

from __future__ import annotations

from polyrl.backend import AlgorithmInfo, BackendInfo, hookimpl

BACKEND = BackendInfo(
    name="tdqn",
    description="Example: DQN in plain PyTorch (own replay buffer, own random generators)",
    driver="polyrl_torch_dqn.driver:DqnDriver",
    library="torch",
    requires=["torch", "gymnasium"],
    install_hint="polyrl-torch-dqn",
    algorithms={
        "dqn": AlgorithmInfo(
            # Every observation reaches a driver as a Box: a vector, or an image (a CNN here).
            observation_spaces=["box", "image"],
            action_spaces=["discrete"],
            on_policy=False,
            description="Deep Q-network: epsilon-greedy, replay buffer, target network",
            # Transitions in (add_experience, prefill) and out (ExperienceRecorder, cooperate).
            features=["experience.add", "experience.collect"],
        ),
    },
    deterministic=True,
    # 50 env steps per iteration (two 25-step episodes of the suite's own env), updates from the
    # 20th transition on, and an exploration schedule short enough to move within the suite's runs.
    conformance_overrides={
        "dqn": {
            "iteration_steps": 50,
            "batch_size": 16,
            "dqn": {"learning_starts": 20, "buffer_size": 500},
            "backend_options": {"exploration_steps": 100},
        }
    },
)


@hookimpl
def polyrl_backends() -> list[BackendInfo]:
    """Declare the tdqn backend."""
    return [BACKEND]
