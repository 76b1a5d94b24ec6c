"""The RLlib backend of polyrl (Ray, new API stack).

Registered through the "polyrl" entry-point group; this module imports neither ray nor torch.
"""

from __future__ import annotations

from polyrl.backend import AlgorithmInfo, BackendInfo, hookimpl

# Imported so pluggy finds the `polyrl bench` hooks on this module (they import Ray only when called).
from polyrl_rllib.bench import polyrl_bench_cells  # noqa: F401
from polyrl_rllib.direct import polyrl_direct_training  # noqa: F401

# No optional exploration features (polyrl.features): the new API stack has no gSDE, its action
# noise classes (GaussianNoise, OrnsteinUhlenbeckNoise) are old-stack `exploration_config`, which
# the new stack clears, and its Gaussian heads start their log std at 0 with no setting for it.
# Experience (polyrl.experience): "experience.add" where there is a replay buffer (DQN, SAC:
# RLlib's EpisodeReplayBuffer.add/sample, polyrl_rllib.experience); "experience.collect" on every
# algorithm, from the episode chunks the local env runner samples (polyrl_rllib.collect; APPO and
# IMPALA sample synchronously in this process when num_env_runners is 0, polyrl's default; with
# remote env runners set_collecting refuses with UnsupportedOptionError).
BACKEND = BackendInfo(
    name="rllib",
    description="RLlib (Ray) on its new API stack: scalable, local by default, a Ray cluster on request",
    driver="polyrl_rllib.driver:RllibDriver",
    library="ray",
    requires=["ray", "torch"],
    install_hint="'polyrl[rllib]'",
    algorithms={
        "ppo": AlgorithmInfo(
            observation_spaces=["box", "image"],
            action_spaces=["discrete", "box"],
            on_policy=True,
            description="Proximal Policy Optimization",
            # The core sets them per iteration (polyrl.schedules): the Learners' clip_param and
            # entropy-coefficient scheduler (polyrl_rllib.learners).
            features=["schedule.clip_range", "schedule.ent_coef", "experience.collect"],
        ),
        "dqn": AlgorithmInfo(
            observation_spaces=["box", "image"],
            action_spaces=["discrete"],
            on_policy=False,
            description="Deep Q-Network (double, dueling by RLlib default)",
            # schedule.epsilon: the RLModules' epsilon scheduler, set per iteration.
            features=["schedule.epsilon", "experience.add", "experience.collect"],
        ),
        "sac": AlgorithmInfo(
            observation_spaces=["box", "image"],
            action_spaces=["box"],
            on_policy=False,
            description="Soft Actor-Critic",
            features=["experience.add", "experience.collect"],
        ),
        "appo": AlgorithmInfo(
            observation_spaces=["box", "image"],
            action_spaces=["discrete", "box"],
            on_policy=True,
            description="Asynchronous PPO",
            features=["experience.collect"],
        ),
        "impala": AlgorithmInfo(
            observation_spaces=["box", "image"],
            action_spaces=["discrete", "box"],
            on_policy=True,
            description="IMPALA (V-trace actor-critic)",
            features=["experience.collect"],
        ),
    },
    deterministic=True,
    conformance_overrides={
        "ppo": {"iteration_steps": 128, "batch_size": 64, "ppo": {"n_epochs": 2}},
        "appo": {"iteration_steps": 100, "batch_size": 50},
        "impala": {"iteration_steps": 100, "batch_size": 50},
        # Two sample-and-update cycles per iteration (train_freq 50 of 100 steps): RLlib's cost is
        # per cycle, and the checks need updates to happen, not many of them.
        "dqn": {
            "iteration_steps": 100,
            "batch_size": 32,
            "dqn": {"learning_starts": 50, "buffer_size": 1000, "train_freq": 50, "gradient_steps": 2},
        },
        "sac": {
            "iteration_steps": 100,
            "batch_size": 32,
            "network": {"hidden": [32, 32]},
            "sac": {"learning_starts": 50, "buffer_size": 1000, "train_freq": 50, "gradient_steps": 2},
        },
    },
)


@hookimpl
def polyrl_backends() -> list[BackendInfo]:
    """Declare the rllib backend."""
    return [BACKEND]
