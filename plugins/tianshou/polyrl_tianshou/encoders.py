"""The input stage of every Tianshou network polyrl builds: an MLP for vectors, a CNN for images.

A vector observation gets Tianshou's own `Net` (an MLP), exactly as before images were
supported. An image observation gets `CnnNet`: polyrl's conv encoder
(`polyrl.torch_layers.conv_encoder`: scale to [0, 1], channels first, the conv layers of
`resolve_network`, flatten) followed by Tianshou's `MLP` with the resolved hidden layers. Both
are Tianshou "preprocess nets" (a `forward(obs, state, info) -> (features, state)` and an
`output_dim`), so Tianshou's actor and critic heads sit on them unchanged.

`describe_encoder` reads the encoder back from a built algorithm for
`effective_hyperparameters().encoder`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from polyrl.observations.network import EncoderDescription
from polyrl.observations.spec import ConvLayerSpec
from polyrl.torch_layers import conv_encoder, describe_convs, torch_activation
from tianshou.utils.net.common import MLP, ActionReprNetWithVectorOutput, Net
from tianshou.utils.torch_utils import torch_device

from polyrl_tianshou.params import Settings


class CnnNet(ActionReprNetWithVectorOutput[Any]):
    """polyrl's conv encoder, then an MLP: Tianshou's `Net` for image observations.

    As with `Net`, `action_dim` > 0 adds an output layer of that size (a Q-network), unless
    `concat` is set: then the input is a continuous critic's row (the flattened image, then the
    action), the action joins the conv features before the hidden layers, and the output is the
    last hidden layer (the critic adds its value head). Tianshou's ContinuousCritic flattens its
    input even without an action (PPO/A2C's value net on Box actions): flat rows are reshaped
    into images first.
    """

    def __init__(
        self,
        *,
        encoder: EncoderDescription,
        hidden: list[int],
        activation: str,
        action_dim: int = 0,
        concat: bool = False,
    ) -> None:
        convs = conv_encoder(encoder, activation)
        mlp = MLP(
            input_dim=int(convs.output_dim) + (action_dim if concat else 0),
            output_dim=0 if concat else action_dim,
            hidden_sizes=hidden,
            activation=torch_activation(activation),
        )
        super().__init__(mlp.output_dim)
        self.encoder = convs
        self.model = mlp
        self.concat = concat
        self.image_shape = tuple(int(n) for n in encoder.input_shape)
        self.image_size = int(np.prod(self.image_shape))

    def forward(
        self, obs: Any, state: Any | None = None, info: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Images (batch, *image_shape) of the env's dtype, or flat rows -> (features, state as given)."""
        observations = torch.as_tensor(obs, device=torch_device(self))
        if observations.dim() == len(self.image_shape) + 1:
            # The env's dtype is kept (uint8 pixels, bool planes): the encoder scales from its bounds.
            features = self.encoder(observations)
        else:
            # Tianshou's ContinuousCritic hands float32 rows: the flattened image, then (with
            # `concat`) the action. Split them again (uint8 and bool values are exact in float32).
            rows = observations.flatten(1)
            images = rows[:, : self.image_size].reshape(-1, *self.image_shape)
            features = self.encoder(images)
            if self.concat:
                features = torch.cat([features, rows[:, self.image_size :].to(features.dtype)], dim=1)
        return self.model(features), state


def build_net(s: Settings, observation_space: Any, action_shape: Any = 0, concat: bool = False) -> Any:
    """The preprocess net (or DQN's whole Q-network when `action_shape` is set without `concat`)."""
    if s.network.is_cnn:
        return CnnNet(
            encoder=s.network.encoder,
            hidden=s.hidden,
            activation=s.activation,
            action_dim=int(np.prod(action_shape)),
            concat=concat,
        )
    return Net(
        state_shape=observation_space.shape,
        action_shape=action_shape,
        hidden_sizes=s.hidden,
        activation=torch_activation(s.activation),
        concat=concat,
    )


def input_net(algorithm: Any) -> Any:
    """The net that takes the observations: DQN's Q-network, else the actor's preprocess net."""
    policy = algorithm.policy
    return policy.model if hasattr(policy, "model") else policy.actor.preprocess


def describe_encoder(algorithm: Any, observation_space: Any) -> EncoderDescription:
    """The encoder the algorithm's actor (or Q-network) really has, read from its modules."""
    net = input_net(algorithm)
    if not isinstance(net, CnnNet):
        # Tianshou's Net flattens the observation into its first Linear layer.
        return EncoderDescription(kind="mlp", input_shape=[int(n) for n in observation_space.shape])
    convs = net.encoder
    return EncoderDescription(
        kind="cnn",
        conv=[ConvLayerSpec(channels=c, kernel=k, stride=st) for c, k, st in describe_convs(convs)],
        input_shape=list(net.image_shape),
        scale=(convs.low, convs.low + convs.span),
        conv_features=int(convs.output_dim),
    )


def module_device(algorithm: torch.nn.Module) -> str:
    """The device the algorithm's parameters are on ("cpu", "cuda:0")."""
    return str(next(algorithm.parameters()).device)
