"""Observations as RLlib's encoders take them, and the RLlib model config of polyrl's network.

RLlib's catalog gives a 1-D Box an MLP encoder and a rank-3 Box its CNN encoder
(`CNNEncoderConfig`), which takes float32 images channels last and has filter defaults for a
few sizes only ("No default CNN configuration" otherwise). So polyrl hands RLlib images the way
the other backends' first layer sees them: every env the driver registers is wrapped in
`ScaledImage` (float32 `(x - low) / (high - low)`, channels moved last), `Agent.act`'s
observations go through the same `to_module` first, and the model config always names the conv
layers `resolve_network` gives ("valid" padding, per layer), its activation, and its hidden
layers (in RLlib's heads: the CNN encoder ends at the flattened conv output). Vector
observations keep polyrl's MLP mapping: `hidden` is the encoder MLP and the heads add no layer.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from polyrl import AgentSpec
from polyrl.observations.images import ImageLayout, image_layout
from polyrl.observations.network import ResolvedNetwork, resolve_network
from polyrl.torch_layers import TORCH_ACTIVATIONS as ACTIVATIONS

#: polyrl's MLP for vector observations when the spec sets no network (an image's default is
#: resolve_network's: hidden [512], relu).
DEFAULT_HIDDEN = {"ppo": [64, 64], "appo": [64, 64], "impala": [64, 64], "dqn": [64, 64], "sac": [64, 64]}
DEFAULT_ACTIVATION = {"ppo": "tanh", "appo": "tanh", "impala": "tanh", "dqn": "relu", "sac": "relu"}


def to_module(observations: np.ndarray, layout: ImageLayout) -> np.ndarray:
    """Images (one, or a batch) as RLlib's CNN takes them: float32 in [0, 1], channels last.

    The one conversion for the envs RLlib samples from and for `act`, so both see equal values.
    """
    scaled = (np.asarray(observations, dtype=np.float32) - np.float32(layout.low)) / np.float32(
        layout.high - layout.low
    )
    return scaled if layout.channels_last else np.ascontiguousarray(np.moveaxis(scaled, -3, -1))


def module_space(space: gym.Space[Any]) -> gym.Space[Any]:
    """The observation space RLlib's module sees for an env observation space (images rescaled)."""
    layout = image_layout(space)
    if layout is None:
        return space
    height, width, channels = layout.height, layout.width, layout.channels
    return gym.spaces.Box(0.0, 1.0, (height, width, channels), np.float32)


class ScaledImage(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """An image env whose observations are `to_module`'s: float32 in [0, 1], channels last."""

    def __init__(self, env: gym.Env[Any, Any], layout: ImageLayout) -> None:
        super().__init__(env)
        self.layout = layout
        self.observation_space = module_space(env.observation_space)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The rescaled image."""
        return to_module(observation, self.layout)


def adapt_env(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    """`env` as RLlib's encoders take it: images wrapped in ScaledImage, other envs as they are."""
    layout = image_layout(env.observation_space)
    return env if layout is None else ScaledImage(env, layout)


class ObservationAdapter:
    """What `act` does to observations before the module's forward pass (the envs' conversion)."""

    def __init__(self, space: gym.Space[Any]) -> None:
        self.layout = image_layout(space)

    def __call__(self, observations: Any) -> np.ndarray:
        if self.layout is None:
            return np.asarray(observations, dtype=np.float32)
        return to_module(observations, self.layout)


def network(spec: AgentSpec, observation_space: gym.Space[Any]) -> ResolvedNetwork:
    """polyrl's network for the spec on the env's observation space, RLlib's defaults filled in."""
    resolved = resolve_network(spec.network, observation_space)
    return resolved.model_copy(
        update={
            "hidden": DEFAULT_HIDDEN[spec.algorithm] if resolved.hidden is None else resolved.hidden,
            "activation": DEFAULT_ACTIVATION[spec.algorithm]
            if resolved.activation is None
            else resolved.activation,
        }
    )


def model_config(spec: AgentSpec, observation_space: gym.Space[Any]) -> dict[str, Any]:
    """RLlib's model_config for the spec's network on the env's observation space.

    Vectors: `hidden` is the encoder MLP (fcnet_hiddens) and the heads add no hidden layer.
    Images: RLlib's CNN encoder with the conv layers spelled out ([channels, [k, k], stride,
    "valid"], so RLlib never falls back to its size-keyed filter table), then `hidden` in every
    head (head_fcnet_hiddens); fcnet_hiddens is only read by SAC's action encoder there.
    """
    resolved = network(spec, observation_space)
    hidden, activation = list(resolved.hidden or []), ACTIVATIONS[resolved.activation or "relu"]
    model: dict[str, Any] = {"fcnet_hiddens": hidden, "fcnet_activation": activation}
    if resolved.is_cnn:
        model.update(
            conv_filters=[
                [layer.channels, [layer.kernel, layer.kernel], layer.stride, "valid"]
                for layer in resolved.encoder.conv
            ],
            conv_activation=activation,
            head_fcnet_hiddens=hidden,
            head_fcnet_activation=activation,
        )
    else:
        model["head_fcnet_hiddens"] = []
    return model
