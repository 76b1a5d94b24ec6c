"""The networks polyrl gives SB3 policies: its MLP mapping for vectors, polyrl's CNN for images.

For an image observation `resolve_network` describes a conv stack, then hidden layers. SB3
takes the conv stack as a features extractor (`PolyrlImageExtractor`, wrapping
`polyrl.torch_layers.conv_encoder`) and the hidden layers as `net_arch` (actor and critic or
Q-network alike), so every SB3 algorithm gets exactly the described network.

SB3 rearranges uint8 images with [0, 255] bounds whose channels it thinks are last
(`VecTransposeImage`, also applied by `predict`): the extractor then receives CxHxW. It puts the
axes back before the conv stack, so the encoder reads the env's own layout by polyrl's rule,
which can differ from SB3's (SB3 picks the smallest axis as channels). `normalize_images` is off:
the encoder scales by the space's bounds, SB3 would otherwise divide by 255 a second time.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from polyrl import AgentSpec
from polyrl.errors import UnsupportedSpaceError
from polyrl.observations.network import EncoderDescription, resolve_network
from polyrl.observations.spec import ConvLayerSpec
from polyrl.torch_layers import conv_encoder, describe_convs, torch_activation
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from polyrl_sb3.params import ON_POLICY


def sb3_transposes(space: Any) -> bool:
    """Whether SB3 hands this observation space to the policy as CxHxW (its `_wrap_env` rule)."""
    return (
        isinstance(space, spaces.Box) and is_image_space(space) and not is_image_space_channels_first(space)
    )


class PolyrlImageExtractor(BaseFeaturesExtractor):
    """polyrl's conv encoder as an SB3 features extractor: scale, conv layers, flatten.

    `encoder` is the EncoderDescription `resolve_network` gave for the env's observation space
    (as a plain dict, so SB3's exported zip stores no polyrl object); `transposed` says whether
    SB3 moved that space's channels first before the policy (`sb3_transposes`).
    """

    def __init__(
        self, observation_space: spaces.Box, encoder: dict[str, Any], activation: str, transposed: bool
    ) -> None:
        description = EncoderDescription.model_validate(encoder)
        shape = tuple(description.input_shape)
        received = tuple(observation_space.shape)
        expected = (shape[2], shape[0], shape[1]) if transposed else shape
        if received != expected:
            raise UnsupportedSpaceError(
                f"the SB3 policy sees observations of shape {received}, polyrl built its encoder "
                f"for {expected}: rebuild the agent from its spec"
            )
        module = conv_encoder(description, activation)
        with torch.no_grad():  # the real size of the flattened conv output, not the computed one
            features = int(module(torch.zeros((1, *shape))).shape[1])
        super().__init__(observation_space, features)
        self.encoder = module
        self.input_shape = [int(n) for n in shape]
        self.transposed = transposed

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Features of a batch (SB3 gives floats of the raw values: `normalize_images` is off)."""
        if self.transposed:  # back from SB3's CxHxW to the env's HxWxC
            observations = observations.permute(0, 2, 3, 1)
        return self.encoder(observations)

    def describe(self) -> EncoderDescription:
        """The encoder as built: its conv layers, input shape, scaling and output size."""
        low, span = float(self.encoder.low), float(self.encoder.span)
        return EncoderDescription(
            kind="cnn",
            conv=[ConvLayerSpec(channels=c, kernel=k, stride=s) for c, k, s in describe_convs(self)],
            input_shape=self.input_shape,
            scale=(low, low + span),
            conv_features=self.features_dim,
        )


def policy_kwargs(spec: AgentSpec, observation_space: Any = None) -> dict[str, Any]:
    """SB3's policy_kwargs for the spec's network on `observation_space` (None: as a vector).

    Vectors keep SB3's defaults unless the spec sets a network (then the same hidden layers for
    actor and critic); images get polyrl's CNN and the resolved hidden layers.
    """
    resolved = resolve_network(spec.network, observation_space) if observation_space is not None else None
    if resolved is None or not resolved.is_cnn:
        if spec.network is None:
            return {}
        hidden: list[int] = list(spec.network.hidden)
        activation: str = spec.network.activation
        kwargs: dict[str, Any] = {}
    else:
        # Both are set for images: resolve_network fills the defaults ([512], relu).
        hidden, activation = list(resolved.hidden or []), resolved.activation or "relu"
        kwargs = {
            "features_extractor_class": PolyrlImageExtractor,
            "features_extractor_kwargs": {
                "encoder": resolved.encoder.model_dump(mode="json"),
                "activation": activation,
                "transposed": sb3_transposes(observation_space),
            },
            "normalize_images": False,
        }
    kwargs["net_arch"] = dict(pi=hidden, vf=hidden) if spec.algorithm in ON_POLICY else hidden
    kwargs["activation_fn"] = torch_activation(activation)
    return kwargs


def actor_extractor(algorithm: str, policy: Any) -> Any:
    """The features extractor in front of the actor (on-policy), the Q-network (DQN) or the actor."""
    if algorithm in ON_POLICY:
        return policy.pi_features_extractor
    if algorithm == "dqn":
        return policy.q_net.features_extractor
    return policy.actor.features_extractor


def describe_encoder(extractor: Any) -> EncoderDescription:
    """The encoder an SB3 features extractor is, read from the module (any extractor class)."""
    if isinstance(extractor, PolyrlImageExtractor):
        return extractor.describe()
    shape = [int(n) for n in extractor._observation_space.shape]
    convs = describe_convs(extractor)
    if convs:  # a user's own extractor (backend_options.policy_kwargs): its layers, its size
        return EncoderDescription(
            kind="cnn",
            conv=[ConvLayerSpec(channels=c, kernel=k, stride=s) for c, k, s in convs],
            input_shape=shape,
        )
    return EncoderDescription(kind="mlp", input_shape=shape)
