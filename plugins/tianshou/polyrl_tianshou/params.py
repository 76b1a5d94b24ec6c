"""Maps a polyrl AgentSpec to Tianshou 2.x settings, and checks `backend_options` by name.

Where the spec leaves a value at None, these polyrl defaults apply (Tianshou's constructor
defaults otherwise; the PPO column was tuned for the wall-clock time to solve CartPole-v1 on
2 CPU cores, see docs/backends/tianshou.md for the measurement):

| setting | ppo | a2c | dqn | sac | td3 / ddpg |
| --- | --- | --- | --- | --- | --- |
| network (hidden, activation) | 64,64 tanh | 64,64 tanh | 64,64 relu | 256,256 relu | 256,256 relu |
| learning_rate (Adam, every optimizer) | 2e-3 | 1e-3 | 1e-3 | 3e-4 | 1e-3 |
| gamma | 0.99 | 0.99 | 0.99 | 0.99 | 0.99 |
| batch_size | 64 | whole rollout | 64 | 256 | 256 |
| iteration_steps (over all envs) | 512 | 64 | 1000 | 1000 | 1000 |
| epochs per iteration | 10 | 1 | - | - | - |
| clip_range / gae_lambda | 0.2 / 0.95 | - / 0.95 | - | - | - |
| ent_coef / vf_coef / max_grad_norm | 0 / 0.5 / 0.5 | 0 / 0.5 / 0.5 | - | auto | - |
| buffer_size / learning_starts | - | - | 100k / 1000 | 100k / 1000 | 100k / 1000 |
| train_freq / gradient_steps | - | - | 4 / 1 | 1 / 1 | 1 / 1 |
| target_update_interval (env steps) | - | - | 500 | - | - |
| exploration eps | - | - | 1.0 -> 0.05 over 10 % | - | - |
| tau | - | - | - | 0.005 | 0.005 |
| action noise std (of the [-1, 1] range) | - | - | - | - | 0.1 |

Semantics: an on-policy iteration collects `iteration_steps` transitions (rounded down to a
multiple of `n_envs`) and updates on them for `n_epochs` passes in minibatches of `batch_size`
(Tianshou's OnPolicyTrainer step). An off-policy iteration collects `iteration_steps`
transitions in collection steps of `train_freq` steps per env, each followed by
`gradient_steps` gradient steps on `batch_size` samples (Tianshou's OffPolicyTrainer step);
until `learning_starts` env steps the actions are uniform random and no update runs.
`target_update_interval` counts env steps (as in sb3) and becomes Tianshou's
`target_update_freq`, which counts gradient steps. Schedules (`polyrl.schedules`) start at
their start value (`dqn.epsilon` as a constant epsilon); the core then sets the learning rate,
PPO's eps_clip, PPO/A2C's ent_coef and DQN's training epsilon before every iteration
(`TianshouDriver.set_scheduled`). TD3/DDPG action noise, like sb3's, is
relative to the normalised action range [-1, 1] the actor outputs. Action noise of SAC/TD3/DDPG
(Gaussian or Ornstein-Uhlenbeck) and PPO/A2C's log_std_init: see `polyrl_tianshou.exploration`.

`backend_options` holds keywords of the Tianshou algorithm's constructor (e.g. PPO's
`value_clip`, `dual_clip`, `advantage_normalization`, `return_scaling`; DQN's `is_double`,
`n_step_return_horizon`, `huber_loss_delta`), of its policy (`deterministic_eval`,
`action_scaling`, `action_bound_method` where they exist), and polyrl's own: `vec_env`
("dummy", the default, or "subproc") and `torch_threads` (default 1; 0 leaves torch alone).
They win over the mapped spec values. The torch device is the spec's `device` field, not a
backend option.

Image observations get the CNN `polyrl.observations.network.resolve_network` describes: its
hidden layers and activation ([512], relu when the spec sets no network) replace the table's.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polyrl import AgentSpec
from polyrl.driverkit import (
    per_env_iteration_steps,
    resolve_device,
    torch_threads_option,
    unknown_options_error,
    vec_env_option,
)
from polyrl.errors import UnsupportedOptionError
from polyrl.exploration import GaussianNoiseSpec, OrnsteinUhlenbeckNoiseSpec, action_noise
from polyrl.observations.network import ResolvedNetwork, resolve_network
from polyrl.schedules import initial_value, section_values

if TYPE_CHECKING:
    from tianshou.algorithm.algorithm_base import Algorithm

NoiseSpec = GaussianNoiseSpec | OrnsteinUhlenbeckNoiseSpec
ON_POLICY = ("ppo", "a2c")
OFF_POLICY = ("dqn", "sac", "td3", "ddpg")
POLYRL_OPTIONS = ("vec_env", "torch_threads")

#: polyrl's defaults for Tianshou, per algorithm (see the module docstring).
DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {
        "hidden": [64, 64],
        "activation": "tanh",
        "learning_rate": 2e-3,
        "gamma": 0.99,
        "batch_size": 64,
        "iteration_steps": 512,
        "n_epochs": 10,
        "clip_range": 0.2,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
    },
    "a2c": {
        "hidden": [64, 64],
        "activation": "tanh",
        "learning_rate": 1e-3,
        "gamma": 0.99,
        "batch_size": None,
        "iteration_steps": 64,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
    },
    "dqn": {
        "hidden": [64, 64],
        "activation": "relu",
        "learning_rate": 1e-3,
        "gamma": 0.99,
        "batch_size": 64,
        "iteration_steps": 1000,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "train_freq": 4,
        "gradient_steps": 1,
        "target_update_interval": 500,
        "exploration_fraction": 0.1,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.05,
    },
    "sac": {
        "hidden": [256, 256],
        "activation": "relu",
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "batch_size": 256,
        "iteration_steps": 1000,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "train_freq": 1,
        "gradient_steps": 1,
        "tau": 0.005,
        "ent_coef": "auto",
    },
    "td3": {
        "hidden": [256, 256],
        "activation": "relu",
        "learning_rate": 1e-3,
        "gamma": 0.99,
        "batch_size": 256,
        "iteration_steps": 1000,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "train_freq": 1,
        "gradient_steps": 1,
        "tau": 0.005,
        "policy_delay": 2,
        "target_policy_noise": 0.2,
        "target_noise_clip": 0.5,
        "action_noise_std": 0.1,
    },
    "ddpg": {
        "hidden": [256, 256],
        "activation": "relu",
        "learning_rate": 1e-3,
        "gamma": 0.99,
        "batch_size": 256,
        "iteration_steps": 1000,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "train_freq": 1,
        "gradient_steps": 1,
        "tau": 0.005,
        "action_noise_std": 0.1,
    },
}

#: Horizon (env steps) DQN's exploration schedule assumes when the run's length is unknown.
FALLBACK_HORIZON = 100_000


# polyrl section field -> the Tianshou algorithm keyword it becomes
_NATIVE_NAMES = {
    "clip_range": "eps_clip",
    "gae_lambda": "gae_lambda",
    "ent_coef": "ent_coef",
    "vf_coef": "vf_coef",
    "max_grad_norm": "max_grad_norm",
    "tau": "tau",
    "policy_delay": "update_actor_freq",
    "target_policy_noise": "policy_noise",
    "target_noise_clip": "noise_clip",
}
# constructor arguments that are objects polyrl builds, never options
_OBJECT_ARGUMENTS = {
    "self",
    "policy",
    "critic",
    "critic2",
    "optim",
    "policy_optim",
    "critic_optim",
    "critic2_optim",
}
_POLICY_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "ppo": {"box": ("deterministic_eval", "action_scaling", "action_bound_method"), "discrete": ()},
    "a2c": {"box": ("deterministic_eval", "action_scaling", "action_bound_method"), "discrete": ()},
    "dqn": {"discrete": ()},
    "sac": {"box": ("action_scaling",), "discrete": ()},
    "td3": {"box": ("action_scaling", "action_bound_method")},
    "ddpg": {"box": ("action_scaling", "action_bound_method")},
}


def algorithm_class(name: str, discrete: bool) -> type[Algorithm[Any, Any]]:
    """The Tianshou Algorithm class of a polyrl algorithm name (discrete SAC for Discrete actions)."""
    from tianshou.algorithm import A2C, DDPG, DQN, PPO, SAC, TD3, DiscreteSAC

    if name == "sac" and discrete:
        return DiscreteSAC
    classes: dict[str, type[Algorithm[Any, Any]]] = {
        "ppo": PPO,
        "a2c": A2C,
        "dqn": DQN,
        "sac": SAC,
        "td3": TD3,
        "ddpg": DDPG,
    }
    return classes[name]


def algorithm_keywords(cls: type[Algorithm[Any, Any]]) -> list[str]:
    """The JSON-settable keywords of a Tianshou algorithm's constructor."""
    names = inspect.signature(cls.__init__).parameters
    return sorted(n for n in names if n not in _OBJECT_ARGUMENTS)


def valid_option_names(algorithm: str, discrete: bool) -> list[str]:
    """Every key `backend_options` accepts for this algorithm and action space."""
    kind = "discrete" if discrete else "box"
    policy_options = _POLICY_OPTIONS[algorithm].get(kind, ())
    return sorted(
        {*algorithm_keywords(algorithm_class(algorithm, discrete)), *policy_options, *POLYRL_OPTIONS}
    )


@dataclass
class Settings:
    """Everything the driver builds from: resolved spec values and native keywords."""

    algorithm: str
    discrete: bool
    learning_rate: float
    gamma: float
    hidden: list[int]
    activation: str
    network: ResolvedNetwork
    """The encoder (MLP or CNN) resolve_network gives the spec's network on the observation space."""
    n_envs: int
    batch_size: int | None
    iteration_steps: int
    n_epochs: int = 1
    buffer_size: int = 0
    learning_starts: int = 0
    collect_steps: int = 0
    gradient_steps: int = 0
    exploration: tuple[float, float, float] | None = None
    ent_coef: float | str | None = None
    action_noise: NoiseSpec | None = None
    """Exploration noise of SAC/TD3/DDPG (polyrl_tianshou.exploration builds Tianshou's)."""
    log_std_init: float | None = None
    """Initial log std of PPO/A2C's Gaussian actor (Box actions)."""
    vec_env: str = "dummy"
    torch_threads: int = 1
    device: str = "cpu"
    """The torch device the networks are built on (driverkit.resolve_device of the spec's)."""
    algorithm_kwargs: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def on_policy(self) -> bool:
        """Whether the algorithm updates on fresh rollouts only."""
        return self.algorithm in ON_POLICY


def _check_options(spec: AgentSpec, discrete: bool) -> None:
    if "device" in spec.backend_options:
        raise UnsupportedOptionError(
            "backend_options.device is not a tianshou option: the device is the spec's own field; "
            f'set device={spec.backend_options["device"]!r} on the AgentSpec ("auto", "cpu", '
            '"cuda" or "cuda:N") and drop it from backend_options'
        )
    valid = valid_option_names(spec.algorithm, discrete)
    unknown = sorted(set(spec.backend_options) - set(valid))
    if unknown:
        raise unknown_options_error("tianshou", spec.algorithm, unknown, valid)
    vec_env_option(spec)
    torch_threads_option(spec)


def settings(spec: AgentSpec, action_space: Any, observation_space: Any) -> Settings:
    """Resolve the spec against polyrl's Tianshou defaults, check backend_options and the device.

    Raises DeviceUnavailableError when the spec's device is a GPU torch cannot see.
    """
    from gymnasium import spaces

    discrete = isinstance(action_space, spaces.Discrete)
    _check_options(spec, discrete)
    network = resolve_network(spec.network, observation_space)
    algorithm = spec.algorithm
    defaults = DEFAULTS[algorithm]
    section = spec.section()
    given = section_values(section)  # a schedule at its start value: the core sets it per iteration

    def value(name: str) -> Any:
        return given.get(name, defaults.get(name))

    n_envs = spec.n_envs
    rate = initial_value(spec.learning_rate)  # a schedule's start: the core sets it per iteration
    resolved = Settings(
        algorithm=algorithm,
        discrete=discrete,
        learning_rate=rate if rate is not None else defaults["learning_rate"],
        gamma=spec.gamma if spec.gamma is not None else defaults["gamma"],
        # None: no spec network on a vector observation, so the backend's default MLP
        hidden=list(network.hidden) if network.hidden is not None else list(defaults["hidden"]),
        activation=network.activation or defaults["activation"],
        network=network,
        n_envs=n_envs,
        batch_size=spec.batch_size if spec.batch_size is not None else defaults["batch_size"],
        iteration_steps=0,
        vec_env=vec_env_option(spec),
        torch_threads=torch_threads_option(spec),
        device=resolve_device(spec.device),
    )
    kwargs: dict[str, Any] = {"gamma": resolved.gamma}
    requested = spec.iteration_steps or defaults["iteration_steps"]
    if algorithm in ON_POLICY:
        per_env = per_env_iteration_steps(requested, n_envs, algorithm)
        resolved.iteration_steps = per_env * n_envs
        resolved.n_epochs = int(value("n_epochs") or 1)
        resolved.log_std_init = value("log_std_init")
        for name in ("clip_range", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm"):
            if value(name) is not None:
                kwargs[_NATIVE_NAMES[name]] = value(name)
    else:
        resolved.buffer_size = int(value("buffer_size"))
        resolved.learning_starts = int(value("learning_starts"))
        resolved.collect_steps = int(value("train_freq")) * n_envs
        resolved.gradient_steps = int(value("gradient_steps"))
        # whole collection steps per iteration, so every iteration collects the same count
        resolved.iteration_steps = math.ceil(requested / resolved.collect_steps) * resolved.collect_steps
        if algorithm == "dqn":
            interval = int(value("target_update_interval"))
            updates_per_env_step = resolved.gradient_steps / resolved.collect_steps
            kwargs["target_update_freq"] = max(1, round(interval * updates_per_env_step))
            resolved.exploration = (
                float(value("exploration_fraction")),
                float(value("exploration_initial_eps")),
                float(value("exploration_final_eps")),
            )
            if "epsilon" in given:  # one epsilon until the core sets the next (set_scheduled)
                resolved.exploration = (resolved.exploration[0], given["epsilon"], given["epsilon"])
        else:
            kwargs["tau"] = value("tau")
        if algorithm == "sac":
            resolved.ent_coef = value("ent_coef")
        if algorithm == "td3":
            for name in ("policy_delay", "target_policy_noise", "target_noise_clip"):
                kwargs[_NATIVE_NAMES[name]] = value(name)
        resolved.action_noise = action_noise(section)
        if resolved.action_noise is None and algorithm in ("td3", "ddpg"):
            resolved.action_noise = GaussianNoiseSpec(sigma=defaults["action_noise_std"])
    kind = "discrete" if discrete else "box"
    policy_names = set(_POLICY_OPTIONS[algorithm].get(kind, ()))
    for key, option in spec.backend_options.items():
        if key in POLYRL_OPTIONS:
            continue
        if key in policy_names:
            resolved.policy_kwargs[key] = option
        else:
            kwargs[key] = option
    resolved.algorithm_kwargs = kwargs
    return resolved
