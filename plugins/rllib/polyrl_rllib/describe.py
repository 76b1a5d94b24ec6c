"""What the RLlib driver reports as its effective hyperparameters: read from the built Algorithm."""

from __future__ import annotations

import json
from typing import Any

import torch
from polyrl.backend import EffectiveHyperparameters
from polyrl.driverkit import native_settings
from polyrl.observations.images import image_layout
from polyrl.observations.network import EncoderDescription
from polyrl.observations.spec import ConvLayerSpec
from polyrl.torch_layers import describe_convs, describe_layers

from polyrl_rllib.params import ON_POLICY

#: Layers of RLlib's CNN encoder that are neither hidden layers nor activations.
_CONV_PARTS = (torch.nn.Conv2d, torch.nn.Flatten, torch.nn.ZeroPad2d)


def actor_parts(module: Any, algorithm: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The actor's encoder and head in the RLModule."""
    if algorithm in ON_POLICY:
        return getattr(module.encoder, "actor_encoder", module.encoder), module.pi
    if algorithm == "dqn":
        return module.encoder, module.af
    return module.pi_encoder, module.pi


def actor_layers(module: Any, algorithm: str) -> list[torch.nn.Module]:
    """The actor's hidden layers in the RLModule (encoder, then the head up to its output Linear).

    A CNN encoder contributes its activations only (its conv layers are the `encoder` report).
    """
    encoder, head = actor_parts(module, algorithm)
    head_layers = list(head.modules())
    last_linear = max(i for i, m in enumerate(head_layers) if isinstance(m, torch.nn.Linear))
    encoder_layers = [m for m in encoder.modules() if not isinstance(m, _CONV_PARTS)]
    return [*encoder_layers, *head_layers[:last_linear]]


def encoder_description(module: Any, algorithm: str, observation_space: Any) -> EncoderDescription:
    """The actor's observation encoder as built: its Conv2d layers and the features its head takes.

    `observation_space` is the env's (the EnvSource's): its shape is the encoder's input, and an
    image's bounds are what the driver's conversion (`encoders.to_module`) scales from.
    """
    encoder, head = actor_parts(module, algorithm)
    shape = [int(n) for n in observation_space.shape or ()]
    convs = describe_convs(encoder)
    layout = image_layout(observation_space)
    if not convs or layout is None:
        return EncoderDescription(kind="mlp", input_shape=shape)
    first = next(m for m in head.modules() if isinstance(m, torch.nn.Linear))
    return EncoderDescription(
        kind="cnn",
        conv=[ConvLayerSpec(channels=c, kernel=k, stride=s) for c, k, s in convs],
        input_shape=shape,
        scale=(layout.low, layout.high),
        conv_features=int(first.in_features),
    )


def effective_hyperparameters(
    algo: Any,
    module: Any,
    algorithm: str,
    learning_rate: float,
    steps_per_iteration: int,
    encoder: EncoderDescription | None = None,
    device: str = "cpu",
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
    elif algorithm == "dqn" and isinstance(epsilon, int | float):  # a constant (dqn.epsilon)
        native["epsilon"] = float(epsilon)
    native["fcnet_hiddens"] = json.dumps(list(config.model_config.get("fcnet_hiddens", [])))
    native["fcnet_activation"] = str(config.model_config.get("fcnet_activation"))
    if config.model_config.get("conv_filters"):  # images: RLlib's CNN encoder, `hidden` in the heads
        for key in ("conv_filters", "conv_activation", "head_fcnet_hiddens", "head_fcnet_activation"):
            native[key] = json.dumps(config.model_config.get(key))
    batch = config.minibatch_size if algorithm in ON_POLICY else config.total_train_batch_size
    return EffectiveHyperparameters(
        learning_rate=learning_rate,
        gamma=float(config.gamma),
        hidden=hidden,
        activation=activation,
        n_envs=int(config.num_envs_per_env_runner) * max(int(config.num_env_runners), 1),
        batch_size=int(batch) if batch is not None else None,
        iteration_steps=steps_per_iteration,
        device=device,
        encoder=encoder,
        native=native,
    )
