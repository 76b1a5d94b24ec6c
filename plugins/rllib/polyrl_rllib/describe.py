"""What the RLlib driver reports as its effective hyperparameters: read from the built Algorithm."""

from __future__ import annotations

import json
from typing import Any

import torch
from polyrl.backend import EffectiveHyperparameters
from polyrl.driverkit import native_settings
from polyrl.torch_layers import describe_layers

from polyrl_rllib.params import ON_POLICY


def actor_layers(module: Any, algorithm: str) -> list[torch.nn.Module]:
    """The actor's hidden layers in the RLModule (encoder, then the head up to its output Linear)."""
    if algorithm in ON_POLICY:
        encoder = getattr(module.encoder, "actor_encoder", module.encoder)
        head = module.pi
    elif algorithm == "dqn":
        encoder, head = module.encoder, module.af
    else:
        encoder, head = module.pi_encoder, module.pi
    head_layers = list(head.modules())
    last_linear = max(i for i, m in enumerate(head_layers) if isinstance(m, torch.nn.Linear))
    return [*encoder.modules(), *head_layers[:last_linear]]


def effective_hyperparameters(
    algo: Any, module: Any, algorithm: str, learning_rate: float, steps_per_iteration: int
) -> EffectiveHyperparameters:
    """Read back from the built Algorithm's config, its Learner optimizers and its RLModule."""
    layers = actor_layers(module, algorithm)
    hidden, activation = describe_layers(layers)
    config = algo.config
    native: dict[str, Any] = {"class": type(algo).__name__, "module": type(module).__name__}
    native.update(
        native_settings(
            config,
            (
                "lr",
                "actor_lr",
                "critic_lr",
                "alpha_lr",
                "gamma",
                "train_batch_size_per_learner",
                "minibatch_size",
                "num_epochs",
                "lambda_",
                "clip_param",
                "vf_clip_param",
                "vf_loss_coeff",
                "entropy_coeff",
                "use_kl_loss",
                "kl_coeff",
                "grad_clip",
                "num_env_runners",
                "num_envs_per_env_runner",
                "num_learners",
                "rollout_fragment_length",
                "min_sample_timesteps_per_iteration",
                "min_time_s_per_iteration",
                "training_intensity",
                "num_steps_sampled_before_learning_starts",
                "target_network_update_freq",
                "tau",
                "initial_alpha",
                "n_step",
                "double_q",
                "dueling",
                "seed",
                "normalize_actions",
                "clip_actions",
            ),
        )
    )
    buffer = getattr(config, "replay_buffer_config", None)
    if isinstance(buffer, dict):
        native["replay_buffer_type"] = str(buffer.get("type"))
        native["replay_buffer_capacity"] = int(buffer.get("capacity", 0))
    epsilon = getattr(config, "epsilon", None)
    if algorithm == "dqn" and isinstance(epsilon, list | tuple):
        native["epsilon"] = json.dumps([list(point) for point in epsilon])
    native["fcnet_hiddens"] = json.dumps(list(config.model_config.get("fcnet_hiddens", [])))
    native["fcnet_activation"] = str(config.model_config.get("fcnet_activation"))
    batch = config.minibatch_size if algorithm in ON_POLICY else config.total_train_batch_size
    return EffectiveHyperparameters(
        learning_rate=learning_rate,
        gamma=float(config.gamma),
        hidden=hidden,
        activation=activation,
        n_envs=int(config.num_envs_per_env_runner) * max(int(config.num_env_runners), 1),
        batch_size=int(batch) if batch is not None else None,
        iteration_steps=steps_per_iteration,
        native=native,
    )
