"""Ready search spaces per algorithm, so `polyrl tune NAME --algo ppo --env CartPole-v1` needs no file.

The ranges follow RL Baselines3 Zoo's samplers (rl_zoo3/hyperparams_opt.py: sample_ppo_params,
sample_a2c_params, sample_dqn_params, sample_sac_params, sample_td3_params, sample_ddpg_params;
https://github.com/DLR-RM/rl-baselines3-zoo), written as polyrl's backend-neutral fields.
Where a space cannot say what the Zoo does, it stays close and says so:

- The Zoo draws `1 - gamma` and `1 - gae_lambda` log-uniformly; a space has no transforms, so
  those are categorical over the values the Zoo's range covers.
- `iteration_steps` (the Zoo's n_steps * n_envs) and `batch_size` are drawn independently, so PPO's
  iteration sizes start at 256 and its batch sizes stop at 256: every minibatch then fits in an
  iteration on every backend (the Zoo also offers n_steps 32-128 and batch size 512).
- The Zoo ties gradient_steps to train_freq for the off-policy algorithms; independent fields
  cannot, so both stay at the backend's polyrl default (add them to a --space file to search them).
- Network sizes are `network.hidden` (the Zoo's net_arch "tiny" [64], "small" [64, 64],
  "medium" [256, 256], "big" [400, 300]).
"""

from __future__ import annotations

from typing import Any

from polyrl.errors import SearchSpaceError
from polyrl.tuning.space import SearchSpace

_DISCOUNTS = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]
# 1 - gamma drawn from [1e-4, 0.03] (log) in the Zoo's PPO/A2C samplers.
_ON_POLICY_DISCOUNTS = [0.97, 0.98, 0.99, 0.995, 0.999, 0.9999]
# 1 - gae_lambda drawn from [1e-4, 0.1] (log).
_GAE_LAMBDAS = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
_TAUS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.08]
_BUFFERS = [10_000, 100_000, 1_000_000]

READY_SPACES: dict[str, dict[str, Any]] = {
    "ppo": {
        "learning_rate": {"float": [1e-5, 2e-3], "log": True},
        "gamma": {"categorical": _ON_POLICY_DISCOUNTS},
        "iteration_steps": {"categorical": [256, 512, 1024, 2048]},
        "batch_size": {"categorical": [32, 64, 128, 256]},
        "ppo.n_epochs": {"categorical": [1, 5, 10, 20]},
        "ppo.clip_range": {"categorical": [0.1, 0.2, 0.3, 0.4]},
        "ppo.gae_lambda": {"categorical": _GAE_LAMBDAS},
        "ppo.ent_coef": {"float": [1e-8, 0.1], "log": True},
        "ppo.max_grad_norm": {"float": [0.3, 2.0]},
        "network.hidden": {"categorical": [[64], [64, 64], [256, 256]]},
        "network.activation": {"categorical": ["tanh", "relu"]},
    },
    "a2c": {
        "learning_rate": {"float": [1e-5, 2e-3], "log": True},
        "gamma": {"categorical": _ON_POLICY_DISCOUNTS},
        "iteration_steps": {"categorical": [32, 64, 128, 256, 512, 1024, 2048]},
        "a2c.gae_lambda": {"categorical": _GAE_LAMBDAS},
        "a2c.ent_coef": {"float": [1e-8, 0.1], "log": True},
        "a2c.max_grad_norm": {"float": [0.3, 2.0]},
        "network.hidden": {"categorical": [[64, 64], [256, 256]]},
        "network.activation": {"categorical": ["tanh", "relu"]},
    },
    "dqn": {
        "learning_rate": {"float": [1e-5, 1.0], "log": True},
        "gamma": {"categorical": _DISCOUNTS},
        "batch_size": {"categorical": [16, 32, 64, 100, 128, 256, 512]},
        "dqn.buffer_size": {"categorical": [10_000, 50_000, 100_000, 1_000_000]},
        "dqn.exploration_final_eps": {"float": [0.0, 0.2]},
        "dqn.exploration_fraction": {"float": [0.0, 0.5]},
        "dqn.target_update_interval": {"categorical": [1, 1000, 5000, 10_000, 15_000, 20_000]},
        "dqn.learning_starts": {"categorical": [0, 1000, 5000, 10_000, 20_000]},
        "network.hidden": {"categorical": [[64], [64, 64], [256, 256]]},
    },
    "sac": {
        "learning_rate": {"float": [1e-5, 1.0], "log": True},
        "gamma": {"categorical": _DISCOUNTS},
        "batch_size": {"categorical": [16, 32, 64, 128, 256, 512, 1024, 2048]},
        "sac.buffer_size": {"categorical": _BUFFERS},
        "sac.learning_starts": {"categorical": [0, 1000, 10_000, 20_000]},
        "sac.tau": {"categorical": _TAUS},
        "network.hidden": {"categorical": [[64, 64], [256, 256], [400, 300]]},
    },
    "td3": {
        "learning_rate": {"float": [1e-5, 1.0], "log": True},
        "gamma": {"categorical": _DISCOUNTS},
        "batch_size": {"categorical": [16, 32, 64, 100, 128, 256, 512, 1024, 2048]},
        "td3.buffer_size": {"categorical": _BUFFERS},
        "td3.tau": {"categorical": _TAUS},
        "td3.action_noise_std": {"float": [0.0, 1.0]},
        "network.hidden": {"categorical": [[64, 64], [256, 256], [400, 300]]},
    },
    "ddpg": {
        "learning_rate": {"float": [1e-5, 1.0], "log": True},
        "gamma": {"categorical": _DISCOUNTS},
        "batch_size": {"categorical": [16, 32, 64, 100, 128, 256, 512, 1024, 2048]},
        "ddpg.buffer_size": {"categorical": _BUFFERS},
        "ddpg.tau": {"categorical": _TAUS},
        "ddpg.action_noise_std": {"float": [0.0, 1.0]},
        "network.hidden": {"categorical": [[64, 64], [256, 256], [400, 300]]},
    },
}


def ready_space(algorithm: str) -> SearchSpace:
    """The ready space of `algorithm`; SearchSpaceError for an algorithm without one."""
    document = READY_SPACES.get(algorithm)
    if document is None:
        raise SearchSpaceError(
            f"polyrl has no ready search space for algorithm {algorithm!r} (ready: "
            f"{', '.join(sorted(READY_SPACES))}); give one as a JSON file with --space "
            '(e.g. {"learning_rate": {"float": [1e-5, 1e-2], "log": true}}; see docs/tuning.md)'
        )
    return SearchSpace.model_validate(document)
