"""Builds the Tianshou networks, policy and algorithm of resolved polyrl settings.

Each algorithm gets the networks Tianshou's own examples use: separate MLPs (`Net`) for the
actor and each critic, with polyrl's hidden sizes and activation (for image observations each
of them is a CNN then the MLP, `encoders.CnnNet`); the actor's output layer and
the critics' value heads are Tianshou's (`DiscreteActor`, `ContinuousActorProbabilistic`,
`ContinuousActorDeterministic`, `DiscreteCritic`, `ContinuousCritic`). Every optimizer is Adam
with the spec's learning rate. Continuous actions are scaled from the actor's [-1, 1] range to
the env's bounds by the policy (`action_scaling`), as Tianshou's collector expects. The
algorithm is moved to the settings' device once built (the optimizers keep their parameters:
torch moves them in place).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from polyrl.backend import EnvSource
from polyrl.errors import UnsupportedOptionError
from tianshou.algorithm.algorithm_base import Algorithm
from tianshou.algorithm.modelfree.ddpg import ContinuousDeterministicPolicy
from tianshou.algorithm.modelfree.discrete_sac import DiscreteSACPolicy
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy, ProbabilisticActorPolicy
from tianshou.algorithm.modelfree.sac import AutoAlpha, SACPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.utils.net.continuous import (
    ContinuousActorDeterministic,
    ContinuousActorProbabilistic,
    ContinuousCritic,
)
from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

from polyrl_tianshou.encoders import build_net
from polyrl_tianshou.exploration import NoisySACPolicy, apply_log_std_init, noise_object
from polyrl_tianshou.params import Settings, algorithm_class

#: Target entropy of discrete SAC's automatic entropy coefficient, as a fraction of log |A|.
DISCRETE_SAC_TARGET_ENTROPY = 0.6
#: polyrl's policy keywords for PPO/A2C on Box actions (backend_options may override them).
_PPO_BOX_POLICY: dict[str, Any] = {
    "deterministic_eval": True,
    "action_scaling": True,
    "action_bound_method": "clip",
}
#: polyrl's policy keywords for TD3/DDPG (backend_options may override them).
_DETERMINISTIC_BOX_POLICY: dict[str, Any] = {"action_scaling": True, "action_bound_method": "clip"}


def gaussian(loc_scale: tuple[torch.Tensor, torch.Tensor]) -> torch.distributions.Distribution:
    """Diagonal Gaussian over the action dimensions (Tianshou's continuous PPO/A2C dist_fn)."""
    loc, scale = loc_scale
    return torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)


def _entropy_coefficient(s: Settings, action_space: Any) -> Any:
    """SAC's alpha: a float, or AutoAlpha (starting at 1, like sb3's "auto") with the usual target."""
    if isinstance(s.ent_coef, int | float):
        return float(s.ent_coef)
    if isinstance(action_space, spaces.Discrete):
        target = DISCRETE_SAC_TARGET_ENTROPY * float(np.log(action_space.n))
    else:
        target = -float(np.prod(action_space.shape))
    return AutoAlpha(target_entropy=target, log_alpha=0.0, optim=AdamOptimizerFactory(lr=s.learning_rate))


def build_algorithm(s: Settings, env: EnvSource) -> Algorithm:
    """The Tianshou Algorithm (holding its Policy) for the settings and env spaces."""
    with warnings.catch_warnings():
        # Tianshou warns about action scaling whenever an actor's max_action is 1, even for the
        # unbounded actors its own examples pair with action scaling; polyrl stays silent.
        warnings.filterwarnings(
            "ignore", message="action_scaling and action_bound_method", category=UserWarning
        )
        try:
            algorithm = _build(s, env)
        except (AssertionError, ValueError, TypeError) as exc:
            # Tianshou checks values with asserts and ValueErrors; say which settings it refused.
            raise UnsupportedOptionError(
                f"Tianshou's {algorithm_class(s.algorithm, s.discrete).__name__} refused the settings "
                f"{s.algorithm_kwargs} / policy {s.policy_kwargs}: {type(exc).__name__}: {exc}"
            ) from exc
    return algorithm.to(s.device)


def _build(s: Settings, env: EnvSource) -> Algorithm:
    obs_space, action_space = env.observation_space, env.action_space
    action_shape: Any  # what Tianshou's heads take: the number of actions (Discrete) or the Box's shape
    if isinstance(action_space, spaces.Discrete):
        discrete, action_shape = True, int(action_space.n)
    else:
        discrete, action_shape = False, action_space.shape
    optim = AdamOptimizerFactory(lr=s.learning_rate)
    kwargs = dict(s.algorithm_kwargs)
    policy_kwargs = dict(s.policy_kwargs)
    # Each algorithm class takes its own keywords (critic, optim, policy_optim, ...).
    cls: Callable[..., Algorithm] = algorithm_class(s.algorithm, discrete)
    spaces_kwargs: dict[str, Any] = {"action_space": action_space, "observation_space": obs_space}
    actor: Any  # the actor class depends on the algorithm and the action space
    if s.algorithm in ("ppo", "a2c"):
        policy: Any
        if discrete:
            actor = DiscreteActor(
                preprocess_net=build_net(s, obs_space), action_shape=action_shape, softmax_output=False
            )
            policy = DiscreteActorPolicy(actor=actor, deterministic_eval=True, **spaces_kwargs)
            critic: Any = DiscreteCritic(preprocess_net=build_net(s, obs_space))
        else:
            actor = ContinuousActorProbabilistic(
                preprocess_net=build_net(s, obs_space), action_shape=action_shape, unbounded=True
            )
            apply_log_std_init(actor, s.log_std_init)
            policy = ProbabilisticActorPolicy(
                actor=actor,
                dist_fn=gaussian,
                **_PPO_BOX_POLICY | policy_kwargs,
                **spaces_kwargs,
            )
            critic = ContinuousCritic(preprocess_net=build_net(s, obs_space))
        return cls(policy=policy, critic=critic, optim=optim, **kwargs)
    if s.algorithm == "dqn":
        model = build_net(s, obs_space, action_shape=action_shape)
        policy = DiscreteQLearningPolicy(model=model, eps_training=1.0, eps_inference=0.0, **spaces_kwargs)
        return cls(policy=policy, optim=optim, **kwargs)
    critics: dict[str, Any]
    if discrete:  # discrete SAC
        actor = DiscreteActor(
            preprocess_net=build_net(s, obs_space), action_shape=action_shape, softmax_output=False
        )
        policy = DiscreteSACPolicy(actor=actor, deterministic_eval=True, **spaces_kwargs)
        critics = {
            name: DiscreteCritic(preprocess_net=build_net(s, obs_space), last_size=action_shape)
            for name in ("critic", "critic2")
        }
    else:
        critics = {
            name: ContinuousCritic(
                preprocess_net=build_net(s, obs_space, action_shape=action_shape, concat=True)
            )
            for name in (("critic", "critic2") if s.algorithm in ("sac", "td3") else ("critic",))
        }
        if s.algorithm == "sac":
            actor = ContinuousActorProbabilistic(
                preprocess_net=build_net(s, obs_space),
                action_shape=action_shape,
                unbounded=True,
                conditioned_sigma=True,
            )
            noise = noise_object(s.action_noise)
            policy = (SACPolicy if noise is None else NoisySACPolicy)(
                actor=actor,
                exploration_noise=noise,
                deterministic_eval=True,
                **policy_kwargs,
                **spaces_kwargs,
            )
        else:
            actor = ContinuousActorDeterministic(
                preprocess_net=build_net(s, obs_space), action_shape=action_shape
            )
            policy = ContinuousDeterministicPolicy(
                actor=actor,
                exploration_noise=noise_object(s.action_noise),
                **_DETERMINISTIC_BOX_POLICY | policy_kwargs,
                **spaces_kwargs,
            )
    optimizers = {f"{name}_optim": AdamOptimizerFactory(lr=s.learning_rate) for name in critics}
    if s.algorithm == "sac":
        alpha = kwargs.pop("alpha", None)
        kwargs["alpha"] = _entropy_coefficient(s, action_space) if alpha is None else float(alpha)
    return cls(
        policy=policy,
        policy_optim=AdamOptimizerFactory(lr=s.learning_rate),
        **critics,
        **optimizers,
        **kwargs,
    )


def actor_hidden_layers(algorithm: Any) -> list[torch.nn.Module]:
    """The hidden Linear and activation modules of the algorithm's actor (or Q-network)."""
    policy = algorithm.policy
    if hasattr(policy, "model"):  # DQN: the Q-network's last Linear is the output layer
        return list(policy.model.model.model)[:-1]
    return list(policy.actor.preprocess.model.model)
