"""Maps the spec's exploration settings (polyrl.exploration) to Stable-Baselines3, and reports them.

| spec | SB3 |
| --- | --- |
| use_sde, sde_sample_freq (PPO, A2C, SAC) | the constructor's `use_sde`, `sde_sample_freq` |
| log_std_init (PPO, A2C; SAC with gSDE) | `policy_kwargs["log_std_init"]` |
| action_noise gaussian (SAC, TD3) | `NormalActionNoise(0, sigma)` per action dimension |
| action_noise ornstein_uhlenbeck (SAC, TD3) | `OrnsteinUhlenbeckActionNoise(0, sigma, theta, dt)` |

SB3 adds the noise to the policy's action in [-1, 1] and clips the sum to [-1, 1] before scaling
it to the env's bounds, so sigma is the fraction of the range's half-width the spec means; it
resets the noise of an env at the end of each of its episodes. TD3 without any noise setting gets
polyrl's Gaussian 0.1 (SB3's own default is no noise, which rarely learns); sigma 0 means none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from polyrl import AgentSpec
from polyrl.exploration import GaussianNoiseSpec, OrnsteinUhlenbeckNoiseSpec, action_noise

#: Section fields this module maps (params.py passes the section's other fields through by name).
EXPLORATION_FIELDS = ("action_noise", "action_noise_std", "log_std_init")
#: TD3's noise when the spec sets none.
TD3_DEFAULT_NOISE = GaussianNoiseSpec(sigma=0.1)


def noise_object(noise: GaussianNoiseSpec | OrnsteinUhlenbeckNoiseSpec, action_space: Any) -> Any:
    """SB3's ActionNoise for the spec's noise (None for sigma 0)."""
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    if noise.sigma <= 0:
        return None
    dim = int(np.prod(action_space.shape))
    mean, sigma = np.zeros(dim), noise.sigma * np.ones(dim)
    if isinstance(noise, OrnsteinUhlenbeckNoiseSpec):
        return OrnsteinUhlenbeckActionNoise(mean, sigma, theta=noise.theta, dt=noise.dt)
    return NormalActionNoise(mean, sigma)


def exploration_kwargs(spec: AgentSpec, action_space: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor keywords, policy_kwargs) for the spec's exploration settings.

    use_sde and sde_sample_freq are constructor keywords params.py passes through by name; this
    adds the action noise and the policy's log_std_init.
    """
    section = spec.section()
    kwargs: dict[str, Any] = {}
    policy_kwargs: dict[str, Any] = {}
    log_std_init = getattr(section, "log_std_init", None)
    if log_std_init is not None:
        policy_kwargs["log_std_init"] = log_std_init
    if spec.algorithm in ("sac", "td3"):
        noise = action_noise(section)
        if noise is None and spec.algorithm == "td3":
            noise = TD3_DEFAULT_NOISE
        built = noise_object(noise, action_space) if noise is not None else None
        if built is not None:
            kwargs["action_noise"] = built
    return kwargs, policy_kwargs


def exploration_report(model: Any) -> dict[str, Any]:
    """What the SB3 model explores with: gSDE and its settings, log_std_init, the action noise."""
    from stable_baselines3.common.noise import OrnsteinUhlenbeckActionNoise

    report: dict[str, Any] = {}
    actor = getattr(model.policy, "actor", model.policy)  # SAC's actor, PPO/A2C's policy
    if getattr(model, "use_sde", False):
        report["use_sde"] = True
        report["sde_sample_freq"] = int(model.sde_sample_freq)
        report["use_expln"] = bool(getattr(actor, "use_expln", False))
    log_std_init = getattr(actor, "log_std_init", None)
    if isinstance(log_std_init, int | float) and _has_log_std_parameter(actor):
        report["log_std_init"] = float(log_std_init)
    noise = getattr(model, "action_noise", None)
    if noise is not None:
        report["action_noise"] = type(noise).__name__
        report["action_noise_sigma"] = float(np.mean(noise._sigma))
        if isinstance(noise, OrnsteinUhlenbeckActionNoise):
            report["action_noise_theta"] = float(noise._theta)
            report["action_noise_dt"] = float(noise._dt)
    return report


def _has_log_std_parameter(actor: Any) -> bool:
    # PPO/A2C's Gaussian (Box actions) and SAC's gSDE hold a log_std parameter that log_std_init
    # initialised; a categorical policy or SAC without gSDE keeps the attribute but never uses it.
    import torch

    return isinstance(getattr(actor, "log_std", None), torch.nn.Parameter)
