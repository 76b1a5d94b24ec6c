"""Maps a polyrl AgentSpec to an RLlib AlgorithmConfig (new API stack) and checks backend_options.

Where the spec leaves a value at None, polyrl's RLlib defaults below apply (RLlib's own defaults
are tuned for large clusters and are slow on a laptop: PPO with lr 5e-5 and 30 epochs took
~245 s to solve CartPole-v1 on 2 cores). See docs/backends/rllib.md for the measurements.

polyrl field -> RLlib setting:
- learning_rate -> lr (SAC: actor_lr, critic_lr and alpha_lr); gamma -> gamma; seed -> debugging(seed)
- network.hidden / activation -> model_config fcnet_hiddens / fcnet_activation (heads get no extra
  hidden layer, so `hidden` is the whole MLP before the output layer); image observations get
  RLlib's CNN encoder with polyrl's conv layers and `hidden` in the heads (see `encoders.py`)
- batch_size -> PPO/APPO/IMPALA: minibatch_size; DQN/SAC: train_batch_size_per_learner
- iteration_steps -> PPO: the train batch (train_batch_size_per_learner x learners); APPO/IMPALA:
  that and min_sample_timesteps_per_iteration; DQN/SAC: min_sample_timesteps_per_iteration
  (rounded up to whole rollout fragments)
- n_envs -> num_envs_per_env_runner x max(num_env_runners, 1)
- ppo.n_epochs, clip_range, gae_lambda, ent_coef, vf_coef, max_grad_norm -> num_epochs,
  clip_param, lambda_, entropy_coeff, vf_loss_coeff, grad_clip
- dqn/sac.buffer_size, learning_starts -> replay_buffer_config capacity,
  num_steps_sampled_before_learning_starts; train_freq -> rollout_fragment_length;
  gradient_steps (updates per sampled fragment) -> training_intensity
- dqn.target_update_interval -> target_network_update_freq; exploration_initial_eps/final_eps/
  fraction -> the epsilon schedule (fraction of EXPLORATION_HORIZON env steps); dqn.epsilon ->
  a constant epsilon
- schedules (polyrl.schedules): their start values; the core then sets lr, clip_param,
  entropy_coeff and epsilon before every iteration (`RllibDriver.set_scheduled`)
- sac.tau -> tau; sac.ent_coef -> initial_alpha (a number also freezes alpha: alpha_lr 0)

`backend_options` keys are the keyword parameters of the AlgorithmConfig builder methods
(`training()`, `env_runners()`, `learners()`, `environment()`, `rl_module()`, `reporting()`,
`debugging()`, `fault_tolerance()`, `framework()`, `resources()`, `python_environment()`) or
public attributes of the config; they win over the mapped values (`model_config` is merged
into polyrl's). polyrl's own options (`address`, `ray_connect_timeout`, `num_env_runners`,
`num_learners`, `num_cpus`, `torch_threads`) are read by `settings.py`. The spec's `device` (resolved
by the driver) -> learners(num_gpus_per_learner, local_gpu_idx) (`devices.py`).
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import Any

from polyrl import AgentSpec
from polyrl.driverkit import per_env_iteration_steps, unknown_options_error
from polyrl.errors import UnsupportedOptionError
from polyrl.schedules import initial_value, section_values

from polyrl_rllib import devices, encoders
from polyrl_rllib.settings import POLYRL_OPTIONS, Settings, read_settings

__all__ = [
    "POLYRL_OPTIONS",
    "Settings",
    "build_config",
    "exploration_schedule",
    "iteration_steps",
    "read_settings",
]

ON_POLICY = ("ppo", "appo", "impala")
OFF_POLICY = ("dqn", "sac")
#: Env steps over which DQN's epsilon decays when the spec gives an exploration_fraction.
EXPLORATION_HORIZON = 100_000

_CONFIG_CLASSES = {
    "ppo": ("ray.rllib.algorithms.ppo", "PPOConfig"),
    "appo": ("ray.rllib.algorithms.appo", "APPOConfig"),
    "impala": ("ray.rllib.algorithms.impala", "IMPALAConfig"),
    "dqn": ("ray.rllib.algorithms.dqn", "DQNConfig"),
    "sac": ("ray.rllib.algorithms.sac", "SACConfig"),
}
#: The builder methods whose keyword parameters backend_options may set.
BUILDER_METHODS = (
    "training",
    "env_runners",
    "learners",
    "environment",
    "rl_module",
    "reporting",
    "debugging",
    "fault_tolerance",
    "framework",
    "resources",
    "python_environment",
)
#: Keys polyrl owns (the env and its registration, the callbacks it reads statistics from).
_RESERVED = {
    "env",
    "env_config",
    "callbacks_class",
    "enable_rl_module_and_learner",
    "enable_env_runner_and_connector_v2",
}


#: polyrl's defaults per algorithm: builder method -> keyword arguments. Measured on 2 cores;
#: the PPO set solves CartPole-v1 fastest of the sets tried (docs/backends/rllib.md).
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "ppo": {
        "training": dict(
            lr=3e-3,
            train_batch_size_per_learner=1000,
            minibatch_size=256,
            num_epochs=10,
            lambda_=0.95,
            clip_param=0.2,
            vf_loss_coeff=0.5,
            # RLlib clips the squared value error at 10 by default, which zeroes the value
            # gradient of most samples once returns exceed ~3: the largest single slowdown.
            vf_clip_param=math.inf,
            entropy_coeff=0.0,
            use_kl_loss=False,
        ),
    },
    # APPO/IMPALA: RLlib's defaults, but an iteration is a fixed number of env steps (one train
    # batch) instead of RLlib's 10 seconds, so iterations are comparable and seeds repeat.
    "appo": {
        "training": dict(lr=5e-4, train_batch_size_per_learner=500),
        "env_runners": dict(rollout_fragment_length=50),
        "reporting": dict(min_time_s_per_iteration=None, min_sample_timesteps_per_iteration=500),
    },
    "impala": {
        "training": dict(lr=5e-4, train_batch_size_per_learner=500),
        "env_runners": dict(rollout_fragment_length=50),
        "reporting": dict(min_time_s_per_iteration=None, min_sample_timesteps_per_iteration=500),
    },
    "dqn": {
        "training": dict(
            lr=1e-3,
            train_batch_size_per_learner=64,
            num_steps_sampled_before_learning_starts=1000,
            target_network_update_freq=250,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 50_000},
            epsilon=[[0, 1.0], [5_000, 0.05]],
        ),
        # 64 env steps, then 16 updates (SB3's ratio of one update per 4 steps): RLlib's fixed
        # cost per sample call and weight sync is then paid once per 64 steps, not per 4.
        "env_runners": dict(rollout_fragment_length=64),
        "reporting": dict(min_time_s_per_iteration=None, min_sample_timesteps_per_iteration=1000),
    },
    "sac": {
        "training": dict(
            actor_lr=1e-3,
            critic_lr=1e-3,
            alpha_lr=1e-3,
            train_batch_size_per_learner=128,
            num_steps_sampled_before_learning_starts=1000,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 100_000},
        ),
        # 20 env steps, then 10 updates: half of SB3's update ratio, 2x the env steps per second.
        "env_runners": dict(rollout_fragment_length=20),
        "reporting": dict(min_time_s_per_iteration=None, min_sample_timesteps_per_iteration=1000),
    },
}
#: Gradient updates per sampled env step when the spec gives no gradient_steps (kept when only
#: train_freq, the fragment length, changes).
UPDATES_PER_STEP = {"dqn": 0.25, "sac": 0.5}


def config_class(algorithm: str) -> type:
    """The RLlib AlgorithmConfig subclass of a polyrl algorithm name."""
    module_name, class_name = _CONFIG_CLASSES[algorithm]
    return getattr(importlib.import_module(module_name), class_name)


def _keyword_parameters(config: Any, method: str) -> list[str]:
    """Keyword-only parameters of `method` over the class hierarchy, minus deprecated ones."""
    from ray.rllib.algorithms.algorithm_config import DEPRECATED_VALUE

    names: list[str] = []
    for cls in type(config).__mro__:
        function = cls.__dict__.get(method)
        if function is None:
            continue
        for name, parameter in inspect.signature(function).parameters.items():
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY or name in names:
                continue
            if parameter.default is DEPRECATED_VALUE or name in _RESERVED:
                continue
            names.append(name)
    return names


def option_methods(config: Any) -> dict[str, str]:
    """backend_options key -> the builder method that takes it, for this config class."""
    found: dict[str, str] = {}
    for method in BUILDER_METHODS:
        for name in _keyword_parameters(config, method):
            found.setdefault(name, method)
    return found


def _attribute_names(config: Any) -> set[str]:
    return {
        name
        for name, value in vars(config).items()
        if not name.startswith("_") and not callable(value) and name not in _RESERVED
    }


def valid_options_text(config: Any) -> str:
    """Every valid backend_options key, grouped by the builder method that takes it."""
    by_method: dict[str, list[str]] = {}
    for name, method in option_methods(config).items():
        by_method.setdefault(method, []).append(name)
    groups = [f"polyrl: {', '.join(POLYRL_OPTIONS)}"]
    groups += [f"{method}(): {', '.join(sorted(names))}" for method, names in by_method.items()]
    return "; ".join(groups) + f"; or any public attribute of {type(config).__name__}"


def _check_option_names(spec: AgentSpec, config: Any) -> dict[str, str]:
    methods = option_methods(config)
    attributes = _attribute_names(config)
    unknown = sorted(
        k
        for k in spec.backend_options
        if k not in POLYRL_OPTIONS and k not in methods and k not in attributes
    )
    if unknown:
        known = [*POLYRL_OPTIONS, *methods, *attributes]
        raise unknown_options_error("rllib", spec.algorithm, unknown, known, valid_options_text(config))
    return methods


def _model_config(spec: AgentSpec, observation_space: Any) -> dict[str, Any]:
    model = encoders.model_config(spec, observation_space)
    if spec.algorithm in ON_POLICY:
        model["vf_share_layers"] = False
    return model


def _map_section(spec: AgentSpec, training: dict[str, Any], env_runners: dict[str, Any]) -> int | None:
    """Map the algorithm section into `training`/`env_runners`; return gradient steps if given."""
    section = spec.section()
    values = section_values(section)  # schedules at their start values: the core sets them later
    gradient_steps = None
    direct = {
        "n_epochs": "num_epochs",
        "clip_range": "clip_param",
        "gae_lambda": "lambda_",
        "vf_coef": "vf_loss_coeff",
        "max_grad_norm": "grad_clip",
        "learning_starts": "num_steps_sampled_before_learning_starts",
        "target_update_interval": "target_network_update_freq",
        "tau": "tau",
    }
    for name, value in values.items():
        if name in direct:
            training[direct[name]] = value
        elif name == "ent_coef" and spec.algorithm == "sac":
            if value != "auto":
                training["initial_alpha"] = float(value)
                training["alpha_lr"] = 0.0  # a given coefficient stays fixed, as in SB3
        elif name == "ent_coef":
            training["entropy_coeff"] = value
        elif name == "epsilon":  # one epsilon until the core sets the next (RllibDriver.set_scheduled)
            training["epsilon"] = float(value)
        elif name == "buffer_size":
            buffer = dict(training.get("replay_buffer_config", {}))
            buffer["capacity"] = value
            training["replay_buffer_config"] = buffer
        elif name == "train_freq":
            env_runners["rollout_fragment_length"] = value
        elif name == "gradient_steps":
            gradient_steps = value
        elif name.startswith("exploration_"):
            continue  # one schedule of the three fields: exploration_schedule, below
        else:
            raise UnsupportedOptionError(
                f"rllib {spec.algorithm} has no setting for {spec.algorithm}.{name}; use "
                "backend_options with RLlib's own name instead"
            )
    # Until the first iteration tells the run's planned end (RllibDriver.set_horizon).
    schedule = exploration_schedule(spec, EXPLORATION_HORIZON)
    if schedule is not None:
        training["epsilon"] = schedule
    return gradient_steps


def exploration_schedule(spec: AgentSpec, end_env_steps: int) -> list[list[float]] | None:
    """DQN's epsilon schedule when the run is planned to end at `end_env_steps` (lifetime steps).

    SB3's and Tianshou's exploration_fraction is a fraction of the planned run, so polyrl's
    DQN decays epsilon over fraction x the run on every backend (the core tells the planned end
    before each iteration). None when the spec sets no exploration_* field (RLlib's own
    schedule stays) or gives epsilon itself (a number or a schedule the core applies).
    """
    section = spec.dqn
    if spec.algorithm != "dqn" or section is None or section.epsilon is not None:
        return None
    fields = {
        "initial": section.exploration_initial_eps,
        "final": section.exploration_final_eps,
        "fraction": section.exploration_fraction,
    }
    if all(value is None for value in fields.values()):
        return None
    initial = 1.0 if fields["initial"] is None else fields["initial"]
    final = 0.05 if fields["final"] is None else fields["final"]
    fraction = 0.1 if fields["fraction"] is None else fields["fraction"]
    return [[0, initial], [max(int(fraction * end_env_steps), 1), final]]


def _map_common_fields(
    spec: AgentSpec, training: dict[str, Any], reporting: dict[str, Any], learners: int
) -> None:
    """Learning rate, gamma, batch size and iteration size into RLlib's training/reporting calls."""
    rate = initial_value(spec.learning_rate)  # a schedule's start value: the core sets it per iteration
    if rate is not None:
        if spec.algorithm == "sac":
            training.update(actor_lr=rate, critic_lr=rate, alpha_lr=rate)
        else:
            training["lr"] = rate
    if spec.gamma is not None:
        training["gamma"] = spec.gamma
    if spec.batch_size is not None:
        key = "minibatch_size" if spec.algorithm in ON_POLICY else "train_batch_size_per_learner"
        training[key] = spec.batch_size
    if spec.iteration_steps is not None:
        if spec.algorithm in ON_POLICY:
            per_env = per_env_iteration_steps(spec.iteration_steps, spec.n_envs, spec.algorithm)
            total = per_env * spec.n_envs
            if total % learners:
                raise UnsupportedOptionError(
                    f"iteration_steps={total} cannot be split evenly over {learners} learners"
                )
            training["train_batch_size_per_learner"] = total // learners
            if spec.algorithm != "ppo":
                reporting["min_sample_timesteps_per_iteration"] = total
        else:
            reporting["min_sample_timesteps_per_iteration"] = spec.iteration_steps


def _split_options(
    spec: AgentSpec, methods: dict[str, str], calls: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Put backend_options into the builder calls they belong to; return the plain attributes.

    backend_options win over everything polyrl mapped; dict-valued configs are merged key by key.
    """
    options = {k: v for k, v in spec.backend_options.items() if k not in POLYRL_OPTIONS}
    attributes: dict[str, Any] = {}
    for name, value in options.items():
        method = methods.get(name)
        if method is None:
            attributes[name] = value
            continue
        target = calls.setdefault(method, {})
        if name in ("model_config", "replay_buffer_config") and isinstance(value, dict):
            value = {**target.get(name, {}), **value}
        target[name] = value
    return attributes


def build_config(
    spec: AgentSpec, env_name: str, settings: Settings, observation_space: Any = None, device: str = "cpu"
) -> Any:
    """The AlgorithmConfig for the spec, with `env_name` the name registered with Ray's registry.

    `observation_space` is the env's (the EnvSource's): an image gets a CNN (`encoders`); None
    maps the network as for a vector. `device` is the resolved device of the Learners (`devices`).
    """
    cls = config_class(spec.algorithm)
    config = cls()
    methods = _check_option_names(spec, config)
    calls: dict[str, dict[str, Any]] = {m: dict(kwargs) for m, kwargs in DEFAULTS[spec.algorithm].items()}
    training = calls.setdefault("training", {})
    env_runners = calls.setdefault("env_runners", {})
    reporting = calls.setdefault("reporting", {})
    runners = settings.num_env_runners
    learners = max(settings.num_learners, 1)
    env_runners.update(num_env_runners=runners, num_envs_per_env_runner=spec.n_envs // max(runners, 1))
    calls["learners"] = {"num_learners": settings.num_learners, **devices.learner_resources(device)}
    # An env that raises in a remote env runner should stop training with its error, not have
    # RLlib restart the actor again and again (backend_options can turn restarts back on).
    calls["fault_tolerance"] = {"restart_failed_env_runners": False}
    _map_common_fields(spec, training, reporting, learners)
    gradient_steps = _map_section(spec, training, env_runners)
    if spec.algorithm in ON_POLICY and training.get("minibatch_size"):
        batch = training["train_batch_size_per_learner"]
        training["minibatch_size"] = min(training["minibatch_size"], batch)
    calls["rl_module"] = {"model_config": _model_config(spec, observation_space)}
    calls["debugging"] = {"seed": spec.seed, "log_level": "ERROR", "log_sys_usage": False}
    attributes = _split_options(spec, methods, calls)
    for method in (
        "environment",
        "env_runners",
        "learners",
        "training",
        "rl_module",
        "reporting",
        "debugging",
        *BUILDER_METHODS,
    ):
        if method in calls:
            getattr(config, method)(**calls.pop(method))
    config.environment(env=env_name)
    for name, value in attributes.items():
        setattr(config, name, value)
    if spec.algorithm in OFF_POLICY and "training_intensity" not in spec.backend_options:
        fragment = config.get_rollout_fragment_length()
        if gradient_steps is None:
            gradient_steps = max(1, round(fragment * UPDATES_PER_STEP[spec.algorithm]))
        # RLlib's intensity is replayed/sampled steps relative to its "native ratio" (formula of
        # ray.rllib.algorithms.dqn.calculate_rr_weights); this gives `gradient_steps` updates
        # per sampled fragment.
        sampled = fragment * config.num_envs_per_env_runner * (runners + 1)
        config.training(training_intensity=gradient_steps * config.total_train_batch_size / sampled)
    return config


def iteration_steps(config: Any, algorithm: str) -> int:
    """Env steps one polyrl iteration (one algo.train()) collects with this config."""
    if algorithm == "ppo":
        return int(config.total_train_batch_size)
    per_step = (
        int(config.get_rollout_fragment_length())
        * int(config.num_envs_per_env_runner)
        * max(int(config.num_env_runners), 1)
    )
    wanted = max(int(config.min_sample_timesteps_per_iteration or 0), 1)
    return math.ceil(wanted / per_step) * per_step
