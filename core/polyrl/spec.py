"""AgentSpec: everything needed to build an agent, on any backend, as one JSON document."""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    PrivateAttr,
    field_validator,
    model_validator,
)

from polyrl._model import SpecModel, StrictModel
from polyrl.exploration import ActionNoiseSettings, GsdeSettings
from polyrl.observations.spec import (
    DEVICE_PATTERN,
    ConvLayerSpec,
    NormalizeSpec,
    WrapperSpec,
    device_text,
    wrapper_documents,
)
from polyrl.schedules import ScheduledNonNegative, ScheduledPositive, ScheduledUnit

Activation = Literal["tanh", "relu", "elu", "leaky_relu", "gelu", "silu"]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
UnitFloat = Annotated[float, Field(ge=0, le=1)]

# Documented upper limits (docs/security.md): a spec past them is a typo or a hostile document,
# and failing here is cheaper than an out-of-memory kill after the backend has allocated.
#: "auto", "none" or a preset's name (lowercase letters, digits, "-", "_", ".").
PRESET_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
SEED_LIMIT = 2**32
"""Seeds are in [0, 2**32): NumPy's legacy seeding and the backends take 32-bit seeds."""
MAX_N_ENVS = 1024
MAX_HIDDEN = 65_536
MAX_ITERATION_STEPS = 10**8
MAX_BATCH_SIZE = 10**8
MAX_BUFFER_SIZE = 10**9


def _seed_in_range(value: int) -> int:
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"a seed must be an int in [0, 2**32), got {value}; use e.g. value % 2**32")
    return value


Seed = Annotated[int, AfterValidator(_seed_in_range)]
HiddenSize = Annotated[int, Field(gt=0, le=MAX_HIDDEN)]


def physical_memory_bytes() -> int | None:
    """The machine's physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def network_bytes_estimate(hidden: list[int]) -> int:
    """float32 bytes of the weights between hidden layers (input/output sizes unknown at spec time)."""
    return 4 * sum(a * b + b for a, b in itertools.pairwise(hidden))


class NetworkSpec(SpecModel):
    """Conv layers (image observations), hidden layer sizes and activation of the policy (and value) networks.

    For an image observation, `conv` left unset takes polyrl's default for the image's size
    (`polyrl.observations.images.default_conv`), the same on every backend.
    """

    conv: list[ConvLayerSpec] | None = Field(default=None, min_length=1, max_length=32)
    """Conv layers of the image encoder (channels, kernel, stride), e.g. [[32, 8, 4], [64, 4, 2]]."""

    hidden: list[HiddenSize] = Field(default_factory=lambda: [64, 64], min_length=1, max_length=64)
    """Hidden layer sizes of the policy and value networks."""
    activation: Activation = "tanh"
    """Activation function between hidden layers."""

    @model_validator(mode="after")
    def _fits_in_memory(self) -> NetworkSpec:
        memory = physical_memory_bytes()
        estimate = network_bytes_estimate(self.hidden)
        if memory is not None and estimate > memory // 2:
            raise ValueError(
                f"network.hidden {self.hidden} needs about {estimate / 2**30:.1f} GiB for its weights "
                f"alone (float32), more than half this machine's memory ({memory / 2**30:.1f} GiB, "
                f"limit {memory // 2 / 2**30:.1f} GiB); use smaller hidden layers"
            )
        return self


class EnvFactorySpec(StrictModel):
    """An environment built by a function: `factory` is its import path, "package.module:function".

    A callable passed as `AgentSpec.env` becomes one of these; the callable itself is kept so
    that lambdas and functions defined in a script work in the process that made them, while the
    import path is what a saved spec records.
    """

    factory: str = Field(pattern=r"^[\w.]+:[\w.<>]+$")
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)
    _callable: Callable[..., Any] | None = PrivateAttr(default=None)

    @classmethod
    def from_callable(cls, fn: Callable[..., Any]) -> EnvFactorySpec:
        """Describe a callable by its import path, keeping the callable for this process."""
        module = getattr(fn, "__module__", None) or "__main__"
        qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        made = cls(factory=f"{module}:{qualname.replace('<locals>.', '')}")
        made._callable = fn
        return made

    def resolve(self) -> Callable[..., Any]:
        """The factory function: the kept callable, else imported from `factory`."""
        if self._callable is not None:
            return self._callable
        module_name, _, attr_path = self.factory.partition(":")
        try:
            target: object = importlib.import_module(module_name)
            for part in attr_path.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            from polyrl.errors import EnvironmentCreationError

            raise EnvironmentCreationError(
                f"cannot import the env factory {self.factory!r}: {exc}. Make the function "
                "importable (a module-level function of an installed module), or pass the "
                "callable again, e.g. Agent.load(path, env=make_env)."
            ) from exc
        if not callable(target):
            from polyrl.errors import EnvironmentCreationError

            raise EnvironmentCreationError(f"env factory {self.factory!r} is not callable")
        return target


class PPOSection(GsdeSettings):
    """PPO-specific settings (and gSDE's, from GsdeSettings); None means the backend's polyrl default."""

    n_epochs: PositiveInt | None = None
    """Passes over each rollout per update."""
    clip_range: ScheduledPositive | None = None
    """PPO's policy ratio clip: a number, or a schedule (see polyrl.schedules), e.g. "lin_0.2"."""
    gae_lambda: UnitFloat | None = None
    """GAE lambda of the advantage estimate."""
    ent_coef: ScheduledNonNegative | None = None
    """Entropy bonus coefficient: a number, or a schedule (see polyrl.schedules)."""
    vf_coef: Annotated[float, Field(ge=0)] | None = None
    """Value loss coefficient."""
    max_grad_norm: PositiveFloat | None = None
    """Gradient norm clip."""


class A2CSection(GsdeSettings):
    """A2C-specific settings (and gSDE's, from GsdeSettings); None means the backend's polyrl default."""

    gae_lambda: UnitFloat | None = None
    """GAE lambda of the advantage estimate."""
    ent_coef: ScheduledNonNegative | None = None
    """Entropy bonus coefficient: a number, or a schedule (see polyrl.schedules)."""
    vf_coef: Annotated[float, Field(ge=0)] | None = None
    """Value loss coefficient."""
    max_grad_norm: PositiveFloat | None = None
    """Gradient norm clip."""


class OffPolicySection(SpecModel):
    """Settings every replay-buffer algorithm shares."""

    buffer_size: Annotated[int, Field(gt=0, le=MAX_BUFFER_SIZE)] | None = None
    """Replay buffer capacity in transitions."""
    learning_starts: NonNegativeInt | None = None
    """Env steps collected before the first update."""
    train_freq: PositiveInt | None = None
    """Env steps between updates."""
    gradient_steps: PositiveInt | None = None
    """Gradient steps per update."""


class DQNSection(OffPolicySection):
    """DQN-specific settings; None means the backend's polyrl default."""

    target_update_interval: PositiveInt | None = None
    """Env steps between target network copies."""
    exploration_fraction: UnitFloat | None = None
    """Fraction of the run over which epsilon decays."""
    exploration_initial_eps: UnitFloat | None = None
    """Epsilon at the start."""
    exploration_final_eps: UnitFloat | None = None
    """Epsilon after the decay."""
    epsilon: ScheduledUnit | None = None
    """Exploration epsilon as one number or schedule over the train() call, e.g. {"kind": "linear",
    "start": 1.0, "end": 0.05, "end_fraction": 0.1}; replaces the exploration_* fields."""

    @model_validator(mode="after")
    def _one_epsilon_setting(self) -> DQNSection:
        given = [
            name
            for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps")
            if getattr(self, name) is not None
        ]
        if self.epsilon is not None and given:
            raise ValueError(
                f"dqn.epsilon and dqn.{', dqn.'.join(given)} are both set: epsilon replaces the "
                'exploration_* fields (e.g. {"kind": "linear", "start": initial_eps, "end": final_eps, '
                '"end_fraction": exploration_fraction}); set one or the other'
            )
        return self


class SACSection(OffPolicySection, GsdeSettings, ActionNoiseSettings):
    """SAC-specific settings (gSDE, action noise: see polyrl.exploration); None: the backend's default."""

    LOG_STD_NEEDS_SDE = True

    tau: UnitFloat | None = None
    """Soft target update coefficient."""
    ent_coef: PositiveFloat | Literal["auto"] | None = None
    """Entropy coefficient, or 'auto' to learn it."""


class TD3Section(OffPolicySection, ActionNoiseSettings):
    """TD3-specific settings (action noise: see polyrl.exploration); None: the backend's polyrl default."""

    tau: UnitFloat | None = None
    """Soft target update coefficient."""
    policy_delay: PositiveInt | None = None
    """Critic updates per actor update."""
    target_policy_noise: Annotated[float, Field(ge=0)] | None = None
    """Std of the target policy smoothing noise."""
    target_noise_clip: Annotated[float, Field(ge=0)] | None = None
    """Clip of the target policy smoothing noise."""
    action_noise_std: Annotated[float, Field(ge=0)] | None = None
    """Shorthand of action_noise {"kind": "gaussian", "sigma": std} (a fraction of the range's half-width)."""


class DDPGSection(OffPolicySection, ActionNoiseSettings):
    """DDPG-specific settings (action noise: see polyrl.exploration); None: the backend's polyrl default."""

    tau: UnitFloat | None = None
    """Soft target update coefficient."""
    action_noise_std: Annotated[float, Field(ge=0)] | None = None
    """Shorthand of action_noise {"kind": "gaussian", "sigma": std} (a fraction of the range's half-width)."""


SECTION_NAMES = ("ppo", "a2c", "dqn", "sac", "td3", "ddpg")


class AgentSpec(SpecModel):
    """What to build: backend, algorithm, environment, network, seed and hyperparameters.

    Every hyperparameter left at None takes the backend's polyrl default for the algorithm;
    `Agent.effective_hyperparameters()` reports the values the native library really holds.
    `backend_options` goes to the native library unchanged; the backend checks its key names.
    """

    backend: str = "sb3"
    """Backend name (see `polyrl plugins`)."""
    algorithm: str = "ppo"
    """Algorithm name, e.g. ppo, dqn, sac."""
    env: str | EnvFactorySpec = "CartPole-v1"
    """A Gymnasium id, or a factory (Python: any callable; JSON: {"factory": "module:function"})."""
    env_kwargs: dict[str, JsonValue] = Field(default_factory=dict)
    """Keyword arguments for gymnasium.make or the factory."""
    seed: Seed | None = None
    """Seed of envs, weights and sampling; None: random."""
    n_envs: Annotated[int, Field(gt=0, le=MAX_N_ENVS)] = 1
    """Parallel envs that collect experience."""
    check_finite: bool = True
    """Stop with NonFiniteDataError on a NaN/infinite reward or float observation; false: let them in."""
    network: NetworkSpec | None = None
    """Conv and hidden layers and activation; None: the backend's default (a CNN for image observations)."""
    wrappers: list[WrapperSpec] = Field(default_factory=list, max_length=32)
    """Observation wrappers applied in order to every env, e.g. ["grayscale", {"kind": "frame_stack"}]."""
    normalize: NormalizeSpec | None = None
    """Running mean/std normalisation of observations and/or rewards, saved with the agent; None: off."""
    device: str = Field(default="auto", pattern=DEVICE_PATTERN)
    """Where the networks run: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"."""
    learning_rate: ScheduledPositive | None = None
    """Optimizer learning rate: a number, or a schedule (see polyrl.schedules), e.g. "lin_3e-4"."""
    gamma: UnitFloat | None = None
    """Discount factor."""
    batch_size: Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)] | None = None
    """Minibatch size of an update."""
    iteration_steps: Annotated[int, Field(gt=0, le=MAX_ITERATION_STEPS)] | None = Field(
        default=None,
        description="Env steps (over all envs) one training iteration collects.",
    )
    ppo: PPOSection | None = None
    a2c: A2CSection | None = None
    dqn: DQNSection | None = None
    sac: SACSection | None = None
    td3: TD3Section | None = None
    ddpg: DDPGSection | None = None
    backend_options: dict[str, JsonValue] = Field(default_factory=dict)
    """Native keywords of the backend's library, checked by name."""
    preset: str = Field(default="auto", pattern=PRESET_PATTERN)
    """Settings for the fields left unset: "auto" (the preset for the algorithm and env, see
    `polyrl presets`), "none" (the library's own defaults) or a preset's name."""
    prefill: str | None = Field(default=None, min_length=1, max_length=4096)
    """A dataset (.npz file polyrl wrote, or a Minari dataset directory or id) whose transitions go
    into the replay buffer when the agent is created; not re-applied on load (the checkpoint keeps
    the buffer). Off-policy algorithms; see docs/experience.md."""

    @field_validator("env", mode="before")
    @classmethod
    def _callable_env_to_factory(cls, value: Any) -> Any:
        if callable(value):
            return EnvFactorySpec.from_callable(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("env must be a Gymnasium id such as 'CartPole-v1' or a factory")
        return value

    @field_validator("prefill", mode="before")
    @classmethod
    def _path_to_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("wrappers", mode="before")
    @classmethod
    def _wrapper_shorthand(cls, value: Any) -> Any:
        return wrapper_documents(value)

    @field_validator("device", mode="before")
    @classmethod
    def _device_lowercase(cls, value: Any) -> Any:
        import re

        value = device_text(value)
        if isinstance(value, str) and not re.match(DEVICE_PATTERN, value):
            raise ValueError(
                f'device must be "auto", "cpu", "cuda" or "cuda:N" (N a GPU index), got {value!r}'
            )
        return value

    @field_validator("backend", "algorithm")
    @classmethod
    def _lowercase(cls, value: str) -> str:
        value = value.strip().lower()
        if not value:
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _only_the_algorithms_section(self) -> AgentSpec:
        wrong = [name for name in SECTION_NAMES if getattr(self, name) is not None and name != self.algorithm]
        if wrong:
            raise ValueError(
                f"section(s) {wrong} are set but the algorithm is {self.algorithm!r}; "
                f"set only the '{self.algorithm}' section"
            )
        return self

    def section(self) -> StrictModel | None:
        """The algorithm-specific section of this spec, if the algorithm has one and it is set."""
        if self.algorithm in SECTION_NAMES:
            section: StrictModel | None = getattr(self, self.algorithm)
            return section
        return None
