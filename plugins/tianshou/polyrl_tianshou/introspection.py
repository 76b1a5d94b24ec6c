"""The native half of the Tianshou driver's effective-hyperparameters report.

Everything is read from the built Tianshou objects (algorithm, policy, vectorised env, buffer,
trainer parameters), in Tianshou's own names, so the report shows what really runs.
"""

from __future__ import annotations

from typing import Any

from polyrl.driverkit import native_settings
from tianshou.trainer import OffPolicyTrainerParams, OnPolicyTrainerParams

from polyrl_tianshou.exploration import exploration_report
from polyrl_tianshou.params import Settings

#: Algorithm attributes reported where the algorithm has them.
ALGORITHM_SETTINGS = (
    "eps_clip",
    "dual_clip",
    "value_clip",
    "advantage_normalization",
    "recompute_adv",
    "gae_lambda",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "return_scaling",
    "tau",
    "n_step",
    "n_step_return_horizon",
    "target_update_freq",
    "is_double",
    "update_actor_freq",
    "policy_noise",
    "noise_clip",
)
#: Policy attributes reported where the policy has them.
POLICY_SETTINGS = ("deterministic_eval", "action_scaling", "action_bound_method", "eps_training")


def native_report(
    algorithm: Any,
    venv: Any,
    buffer: Any,
    params: OnPolicyTrainerParams | OffPolicyTrainerParams,
    settings: Settings,
) -> dict[str, Any]:
    """Tianshou's classes, trainer parameters, algorithm and policy settings, by their native names."""
    policy = algorithm.policy
    native: dict[str, Any] = {
        "algorithm": type(algorithm).__name__,
        "policy": type(policy).__name__,
        "vector_env": type(venv).__name__,
        "collection_step_num_env_steps": params.collection_step_num_env_steps,
        "epoch_num_steps": params.epoch_num_steps,
        "buffer_size": int(buffer.maxsize),
    }
    if isinstance(params, OnPolicyTrainerParams):
        native["update_step_num_repetitions"] = params.update_step_num_repetitions
    else:
        native["update_step_num_gradient_steps_per_sample"] = params.update_step_num_gradient_steps_per_sample
        native["learning_starts"] = settings.learning_starts
    native.update(native_settings(algorithm, ALGORITHM_SETTINGS))
    alpha = getattr(algorithm, "alpha", None)
    if alpha is not None:
        native["alpha"] = float(alpha.value)
        native["alpha_auto"] = type(alpha).__name__ == "AutoAlpha"
    native.update(exploration_report(policy, settings.action_noise, settings.log_std_init))
    native.update(native_settings(policy, POLICY_SETTINGS))
    return native
