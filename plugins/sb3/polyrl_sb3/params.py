"""Maps a polyrl AgentSpec to Stable-Baselines3 constructor arguments.

Where the spec leaves a value at None, SB3's own default applies, with these polyrl choices:

| setting | polyrl default for sb3 | why |
| --- | --- | --- |
| device | the spec's ("auto": CUDA if torch sees a GPU) | as every backend; small MLPs are faster on "cpu" |
| torch threads | 1 | as fast as 2 for these MLPs, and 50x faster when other processes load the cores |
| off-policy iteration | 1000 env steps | an SB3 collect/update cycle is ~4 steps: too fine |
| TD3 action noise | Gaussian, std 0.1 | SB3's default is no noise, which rarely learns |

gSDE, log_std_init and action noise: see `polyrl_sb3.exploration`.

Schedules (`polyrl.schedules`): the model is built with each schedule's start value (`dqn.epsilon`
as exploration_initial_eps = exploration_final_eps); the core then sets the learning rate, PPO's
clip range, PPO/A2C's ent_coef and DQN's epsilon before every iteration (`Sb3Driver.set_scheduled`).

Networks: a vector observation keeps SB3's default MLP unless the spec sets `network` (then the
same hidden layers for actor and critic); an image gets polyrl's CNN (`network`: the conv stack
as a features extractor, then `hidden` layers; see `polyrl_sb3.network`). The device is resolved
at creation and at load (a load may move an agent to another device): a GPU torch does not see
is a DeviceUnavailableError, never a silent fall back to the CPU.

On-policy (PPO, A2C): one iteration is exactly one SB3 rollout + update; `iteration_steps`
sets `n_steps = iteration_steps // n_envs`. `batch_size` is PPO's minibatch size (A2C has
none). `backend_options` are SB3 constructor keywords (checked by name) and win over the
mapped values; `policy_kwargs` there is merged into polyrl's. polyrl-only options:
`vec_env`: "dummy" (default) or "subproc"; `torch_threads`: torch intra-op threads of this
process (default 1; 0 leaves torch's setting).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from polyrl import AgentSpec
from polyrl.driverkit import apply_torch_threads as set_torch_threads
from polyrl.driverkit import (
    per_env_iteration_steps,
    resolve_device,
    torch_threads_option,
    unknown_options_error,
    vec_env_option,
)
from polyrl.errors import UnsupportedOptionError
from polyrl.schedules import initial_value, section_values

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

ON_POLICY = ("ppo", "a2c")
OFF_POLICY_ITERATION_STEPS = 1000
POLYRL_OPTIONS = ("vec_env", "torch_threads")


def algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 class of a polyrl algorithm name."""
    import stable_baselines3 as sb3

    classes: dict[str, type[BaseAlgorithm]] = {
        "ppo": sb3.PPO,
        "a2c": sb3.A2C,
        "dqn": sb3.DQN,
        "sac": sb3.SAC,
        "td3": sb3.TD3,
    }
    return classes[name]


def constructor_keywords(cls: type[BaseAlgorithm]) -> list[str]:
    """The keyword names an SB3 algorithm class accepts (what backend_options may use)."""
    names = inspect.signature(cls.__init__).parameters
    return sorted(n for n in names if n not in ("self", "policy", "env", "_init_setup_model"))


def sb3_kwargs(spec: AgentSpec, action_space: Any, observation_space: Any = None) -> dict[str, Any]:
    """Constructor keywords (without policy and env) for the spec's algorithm.

    `observation_space` is the env's (a Box: polyrl encodes every other space); an image gets
    polyrl's CNN. Without it the network is mapped as for a vector observation.
    """
    from polyrl_sb3.exploration import EXPLORATION_FIELDS, exploration_kwargs
    from polyrl_sb3.network import policy_kwargs as network_policy_kwargs

    cls = algorithm_class(spec.algorithm)
    allowed = set(constructor_keywords(cls))
    kwargs: dict[str, Any] = {"seed": spec.seed, "device": resolve_device(spec.device), "verbose": 0}
    if spec.learning_rate is not None:
        kwargs["learning_rate"] = initial_value(spec.learning_rate)  # a schedule: the core sets it later
    if spec.gamma is not None:
        kwargs["gamma"] = spec.gamma
    if spec.batch_size is not None:
        if "batch_size" not in allowed:
            raise UnsupportedOptionError(
                f"sb3 {spec.algorithm} has no batch size (it updates on the whole rollout); "
                "remove batch_size or set iteration_steps instead"
            )
        kwargs["batch_size"] = spec.batch_size
    if spec.algorithm in ON_POLICY and spec.iteration_steps is not None:
        kwargs["n_steps"] = per_env_iteration_steps(spec.iteration_steps, spec.n_envs, spec.algorithm)
    section = spec.section()
    if section is not None:
        for name, value in section_values(section).items():  # schedules at their start values
            if name in EXPLORATION_FIELDS:  # mapped by polyrl_sb3.exploration
                continue
            if name == "epsilon":  # one epsilon until the core sets the next (Sb3Driver.set_scheduled)
                kwargs.update(exploration_initial_eps=value, exploration_final_eps=value)
                continue
            if name not in allowed:
                raise UnsupportedOptionError(f"sb3 {spec.algorithm} has no setting {name!r}")
            kwargs[name] = value
    noise_kwargs, exploration_policy_kwargs = exploration_kwargs(spec, action_space)
    kwargs.update(noise_kwargs)
    policy_kwargs = network_policy_kwargs(spec, observation_space) | exploration_policy_kwargs
    options = {k: v for k, v in spec.backend_options.items() if k not in POLYRL_OPTIONS}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise unknown_options_error(
            "sb3", spec.algorithm, unknown, [*constructor_keywords(cls), *POLYRL_OPTIONS]
        )
    extra_policy_kwargs = options.get("policy_kwargs")
    if isinstance(extra_policy_kwargs, dict):
        del options["policy_kwargs"]
        policy_kwargs.update(extra_policy_kwargs)
    kwargs.update(options)
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    vec_env_option(spec)
    torch_threads_option(spec)
    return kwargs


def apply_torch_threads(spec: AgentSpec) -> None:
    """Set torch's intra-op threads as the spec's backend_options ask."""
    set_torch_threads(torch_threads_option(spec))


def iteration_steps(spec: AgentSpec, model: Any) -> int:
    """Env steps one polyrl iteration collects for this model."""
    if spec.algorithm in ON_POLICY:
        return int(model.n_steps * model.n_envs)
    wanted = spec.iteration_steps or OFF_POLICY_ITERATION_STEPS
    # SB3 collects train_freq steps in every env between updates: learn() stops at the first
    # multiple of that unit at or past the request, so that multiple is what one iteration takes.
    frequency: Any = getattr(model, "train_freq", None)
    per_env = (
        frequency.frequency
        if getattr(frequency, "unit", None) is not None and frequency.unit.value == "step"
        else 1
    )
    unit = int(per_env) * int(model.n_envs)
    return -(-wanted // unit) * unit
