"""Maps the spec's exploration settings (polyrl.exploration) to Tianshou 2.x objects, and reports them.

| spec | Tianshou |
| --- | --- |
| action_noise gaussian (SAC, TD3, DDPG) | the policy's `exploration_noise`: `GaussianNoise(sigma=...)` |
| action_noise ornstein_uhlenbeck | `OUNoise(sigma=..., theta=..., dt=...)` (tianshou.exploration) |
| log_std_init (PPO, A2C, Box actions) | the actor's state-independent log std (`sigma_param`) |

Tianshou adds the noise to the policy's action in [-1, 1] before scaling it to the env's bounds.
Its TD3/DDPG policy clips the sum to [-1, 1] on the way to the env; its SAC policy does not
(SAC's actions are already tanh-squashed), so polyrl's SAC policy with noise clips the sum too,
as SB3 does. Tianshou never resets an OU process: it runs on across episode ends (SB3 resets it
per env at the end of each episode).

Not here, because Tianshou has no such thing: gSDE; log_std_init for SAC (its std comes from the
network, `conditioned_sigma`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from polyrl.exploration import GaussianNoiseSpec, OrnsteinUhlenbeckNoiseSpec
from tianshou.algorithm.modelfree.sac import SACPolicy
from tianshou.exploration import BaseNoise, GaussianNoise, OUNoise

NoiseSpec = GaussianNoiseSpec | OrnsteinUhlenbeckNoiseSpec


def noise_object(noise: NoiseSpec | None) -> BaseNoise | None:
    """Tianshou's noise for the spec's (None for no noise or sigma 0)."""
    if noise is None or noise.sigma <= 0:
        return None
    if isinstance(noise, OrnsteinUhlenbeckNoiseSpec):
        return OUNoise(sigma=noise.sigma, theta=noise.theta, dt=noise.dt)
    return GaussianNoise(sigma=noise.sigma)


class NoisySACPolicy(SACPolicy):
    """SAC's policy with exploration noise whose sum is clipped to the actor's [-1, 1] range.

    Tianshou's SACPolicy leaves the noisy action unbounded, so it would reach the env (and the
    replay buffer) outside the action space; TD3/DDPG's policy clips, and so does SB3's SAC.
    """

    def add_exploration_noise(self, act: Any, batch: Any) -> Any:
        """The noisy action, clipped to [-1, 1]."""
        noisy = super().add_exploration_noise(act, batch)
        return np.clip(noisy, -1.0, 1.0) if isinstance(noisy, np.ndarray) else noisy


def apply_log_std_init(actor: Any, value: float | None) -> None:
    """Fill a state-independent Gaussian actor's log std (`sigma_param`) with `value`."""
    if value is None:
        return
    with torch.no_grad():
        actor.sigma_param.fill_(value)


@contextmanager
def noise_state_kept(policy: Any) -> Iterator[None]:
    """Keep the exploration noise's process state (OU's last value) across the block.

    Stochastic play draws noise like training does; an OU process must not move on for it, so
    training continues from the state it left.
    """
    noise = getattr(policy, "exploration_noise", None)
    saved = dict(vars(noise)) if noise is not None else None
    try:
        yield
    finally:
        if noise is not None and saved is not None:
            vars(noise).update(saved)


def _ou_spec_of(built: OUNoise, noise: NoiseSpec | None) -> OrnsteinUhlenbeckNoiseSpec | None:
    # OUNoise keeps only theta * dt and sigma * sqrt(dt): the spec's values are reported when
    # they are what the object holds
    if (
        isinstance(noise, OrnsteinUhlenbeckNoiseSpec)
        and np.isclose(built._alpha, noise.theta * noise.dt)
        and np.isclose(built._beta, noise.sigma * np.sqrt(noise.dt))
    ):
        return noise
    return None


def exploration_report(policy: Any, noise: NoiseSpec | None, log_std_init: float | None) -> dict[str, Any]:
    """The noise class and its settings, and the actor's log std, as built."""
    report: dict[str, Any] = {}
    built = getattr(policy, "exploration_noise", None)
    if built is not None:
        report["exploration_noise"] = type(built).__name__
        if isinstance(built, GaussianNoise):
            report["exploration_noise_sigma"] = float(built._sigma)
        elif isinstance(built, OUNoise) and (ou := _ou_spec_of(built, noise)) is not None:
            report.update(
                exploration_noise_sigma=ou.sigma,
                exploration_noise_theta=ou.theta,
                exploration_noise_dt=ou.dt,
            )
    sigma_param = getattr(getattr(policy, "actor", None), "sigma_param", None)
    if isinstance(sigma_param, torch.nn.Parameter):
        if log_std_init is not None:
            report["sigma_param_init"] = log_std_init
        report["sigma_param_mean"] = float(sigma_param.detach().mean())
    return report
