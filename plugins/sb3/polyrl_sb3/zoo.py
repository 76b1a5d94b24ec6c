"""RL Zoo3's configurations for `polyrl bench --baseline zoo`: read from rl-zoo3's files, checked.

RL Zoo3 publishes tuned SB3 hyperparameters as YAML, one file per algorithm
(`rl_zoo3/hyperparams/ppo.yml`), one entry per env id. This module reads the entry for a bench
cell from the installed rl-zoo3 package (its files only: importing rl_zoo3 would pull in its own
dependencies, which the bench does not need) and turns it into what `zoo_run` builds: the SB3
constructor arguments plus what RL Zoo3's ExperimentManager does around them (n_envs vectorised
envs, VecNormalize, action noise, `lin_X` schedules, n_timesteps).

Some values are Python snippets in strings ("dict(net_arch=[64, 64], log_std_init=-3.67)"). RL
Zoo3 eval()s them; here they are parsed (`literal`): literal values, `dict(...)` calls and a few
torch activation names only; anything else is refused, naming the snippet. So is every key of
an entry this runner does not implement (a wrapper, a callback, frame stacking...), by name.

Importing this module imports no ML library: the hooks import SB3 when they run.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.backend import hookimpl
from polyrl.errors import ConfigurationError, ExtraNotInstalledError

if TYPE_CHECKING:
    from polyrl_conformance.bench.cells import BenchCell
    from polyrl_conformance.bench.protocol import SeedProtocol, Trained
    from polyrl_conformance.bench.records import ZooConfig

BACKEND = "sb3"
PACKAGE = "rl_zoo3"
INSTALL = "pip install rl-zoo3"

#: Keys of an entry that are not constructor arguments: RL Zoo3's ExperimentManager handles them.
RUNNER_KEYS = frozenset(
    {"n_timesteps", "n_envs", "policy", "normalize", "policy_kwargs", "noise_type", "noise_std"}
)
#: Keys RL Zoo3 turns into schedules: "lin_X" is linear from X to 0 over n_timesteps.
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
_OFF_POLICY = {"learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq"}
_OFF_POLICY |= {"gradient_steps", "optimize_memory_usage"}
#: The SB3 2.9 constructor arguments an entry may set, per algorithm (tests check them against SB3).
CONSTRUCTOR_KEYS: dict[str, frozenset[str]] = {
    "ppo": frozenset(
        {"learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range"}
        | {"clip_range_vf", "normalize_advantage", "ent_coef", "vf_coef", "max_grad_norm", "use_sde"}
        | {"sde_sample_freq", "target_kl"}
    ),
    "a2c": frozenset(
        {"learning_rate", "n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm"}
        | {"rms_prop_eps", "use_rms_prop", "use_sde", "sde_sample_freq", "normalize_advantage"}
    ),
    "dqn": frozenset(
        _OFF_POLICY
        | {"target_update_interval", "exploration_fraction", "exploration_initial_eps"}
        | {"exploration_final_eps", "max_grad_norm"}
    ),
    "sac": frozenset(
        _OFF_POLICY
        | {"ent_coef", "target_update_interval", "target_entropy", "use_sde", "sde_sample_freq"}
        | {"use_sde_at_warmup"}
    ),
    "td3": frozenset(_OFF_POLICY | {"policy_delay", "target_policy_noise", "target_noise_clip"}),
}
#: VecNormalize arguments a `normalize` dict may give (RL Zoo3 adds the entry's gamma itself).
NORMALIZE_KEYS = frozenset({"norm_obs", "norm_reward", "clip_obs", "clip_reward", "epsilon", "gamma"})
#: Names a snippet may use: torch activation classes, resolved when the model is built.
NAMES = frozenset({"nn.ReLU", "nn.Tanh", "nn.ELU", "nn.LeakyReLU", "nn.SiLU", "nn.GELU", "nn.Sigmoid"})
NOISE_TYPES = ("normal", "ornstein-uhlenbeck")


@dataclass(frozen=True)
class Named:
    """A name from a snippet's allow-list (e.g. nn.ReLU), resolved to its class at build time."""

    path: str


@dataclass(frozen=True)
class LinearSchedule:
    """RL Zoo3's "lin_X": X times SB3's progress_remaining (X at the start, 0 at n_timesteps)."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


@dataclass
class ZooSettings:
    """One RL Zoo3 entry, parsed: what `zoo_run.train` builds and trains."""

    algorithm: str
    env: str
    n_timesteps: int
    n_envs: int = 1
    policy: str = "MlpPolicy"
    normalize: dict[str, Any] | None = None  # VecNormalize's arguments, None: no normalisation
    noise: tuple[str, float] | None = None  # (noise_type, noise_std): action noise of TD3/SAC
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)  # the constructor's other arguments


# -- snippets --------------------------------------------------------------------------------------
def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _value(node: ast.expr, text: str) -> Any:
    """The value of one node of a snippet: literals, lists, tuples, dicts, dict(...), allowed names."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand, text)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    elif isinstance(node, ast.List):
        return [_value(item, text) for item in node.elts]
    elif isinstance(node, ast.Tuple):
        return tuple(_value(item, text) for item in node.elts)
    elif isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        keys = [_value(key, text) for key in node.keys if key is not None]
        if all(isinstance(key, str) for key in keys):
            return {key: _value(value, text) for key, value in zip(keys, node.values, strict=True)}
    elif isinstance(node, ast.Call) and _dotted(node.func) == "dict" and not node.args:
        if all(keyword.arg is not None for keyword in node.keywords):
            return {str(keyword.arg): _value(keyword.value, text) for keyword in node.keywords}
    elif (name := _dotted(node)) in NAMES:
        return Named(str(name))
    raise ConfigurationError(
        f"RL Zoo3 setting {text!r}: cannot read {ast.unparse(node)!r}; polyrl reads literal values, "
        f"dict(...) and the names {sorted(NAMES)} only (it never evaluates code)"
    )


def literal(text: str) -> Any:
    """A snippet of an RL Zoo3 entry, e.g. "dict(net_arch=[64, 64])", parsed without evaluating it."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigurationError(f"RL Zoo3 setting {text!r} is not a Python expression: {exc.msg}") from exc
    return _value(tree.body, text)


# -- entries ---------------------------------------------------------------------------------------
def _number(entry: dict[str, Any], key: str, where: str, minimum: int = 1) -> int:
    value = entry[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < minimum
        or value != int(value)
    ):
        raise ConfigurationError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _normalize(value: Any, gamma: Any, where: str) -> dict[str, Any] | None:
    if value is False:
        return None
    kwargs = {} if value is True else literal(value) if isinstance(value, str) else value
    if not isinstance(kwargs, dict):
        raise ConfigurationError(f"{where}: normalize must be true/false or a dict, got {value!r}")
    unknown = sorted(set(kwargs) - NORMALIZE_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: normalize sets {unknown}; this runner supports {sorted(NORMALIZE_KEYS)}"
        )
    if gamma is not None:
        kwargs = {**kwargs, "gamma": gamma}  # as RL Zoo3: the reward's discount is the algorithm's
    return dict(kwargs)


def _noise(entry: dict[str, Any], where: str) -> tuple[str, float] | None:
    if "noise_type" not in entry and "noise_std" not in entry:
        return None
    kind, std = entry.get("noise_type"), entry.get("noise_std")
    if kind not in NOISE_TYPES or isinstance(std, bool) or not isinstance(std, int | float) or std < 0:
        raise ConfigurationError(
            f"{where}: noise_type must be one of {list(NOISE_TYPES)} with noise_std >= 0, "
            f"got {kind!r} and {std!r}"
        )
    return str(kind), float(std)


def _constructor_value(key: str, value: Any, where: str) -> Any:
    if key in SCHEDULE_KEYS and isinstance(value, str):
        kind, _, initial = value.partition("_")
        try:
            number = float(initial)
        except ValueError:
            number = None
        if kind != "lin" or number is None:
            raise ConfigurationError(f"{where}: {key} {value!r} is not a number or a lin_X schedule")
        return LinearSchedule(number)
    if key == "train_freq" and isinstance(value, list):
        return tuple(value)  # [1, "episode"]: SB3 wants a tuple, as RL Zoo3 converts it
    return value


def parse_entry(algorithm: str, env: str, entry: dict[str, Any]) -> ZooSettings:
    """An entry of hyperparams/<algorithm>.yml as settings; ConfigurationError naming what is unsupported."""
    where = f"RL Zoo3's {algorithm} on {env}"
    allowed = CONSTRUCTOR_KEYS.get(algorithm)
    if allowed is None:
        raise ConfigurationError(f"{where}: polyrl runs RL Zoo3 for {sorted(CONSTRUCTOR_KEYS)} only")
    unknown = sorted(set(entry) - RUNNER_KEYS - allowed)
    if unknown:
        raise ConfigurationError(
            f"{where} sets {unknown}, which polyrl's RL Zoo3 runner does not implement; it runs entries "
            f"made of {sorted(RUNNER_KEYS)} and SB3's {algorithm.upper()} arguments {sorted(allowed)}"
        )
    if "n_timesteps" not in entry:
        raise ConfigurationError(f"{where} has no n_timesteps")
    policy = entry.get("policy", "MlpPolicy")
    if policy != "MlpPolicy":
        raise ConfigurationError(f"{where}: policy {policy!r}; this runner builds 'MlpPolicy' only")
    policy_kwargs = entry.get("policy_kwargs", {})
    if isinstance(policy_kwargs, str):
        policy_kwargs = literal(policy_kwargs)
    if not isinstance(policy_kwargs, dict):
        raise ConfigurationError(f"{where}: policy_kwargs must be a dict, got {policy_kwargs!r}")
    return ZooSettings(
        algorithm=algorithm,
        env=env,
        n_timesteps=_number(entry, "n_timesteps", where),
        n_envs=_number(entry, "n_envs", where) if "n_envs" in entry else 1,
        policy=policy,
        normalize=_normalize(entry.get("normalize", False), entry.get("gamma"), where),
        noise=_noise(entry, where),
        policy_kwargs=policy_kwargs,
        kwargs={k: _constructor_value(k, v, where) for k, v in entry.items() if k not in RUNNER_KEYS},
    )


def hyperparams_directory() -> Path:
    """rl-zoo3's hyperparams folder; ExtraNotInstalledError saying how to install it."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ExtraNotInstalledError(
            f"RL Zoo3's configurations come from the rl-zoo3 package, which is not installed: {INSTALL}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "hyperparams"


def read_entry(algorithm: str, env: str) -> tuple[dict[str, Any] | None, str, str]:
    """RL Zoo3's entry for algorithm x env (None if it has none), where it comes from, rl-zoo3's version."""
    import yaml  # type: ignore[import-untyped]  # a dependency of rl-zoo3 (no stubs), present with it

    path = hyperparams_directory() / f"{algorithm}.yml"
    source = f"hyperparams/{algorithm}.yml: {env}"
    version = importlib.metadata.version(PACKAGE)
    if not path.is_file():
        return None, source, version
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entry = entries.get(env)
    return (dict(entry) if isinstance(entry, dict) else None), source, version


def zoo_settings(algorithm: str, env: str) -> ZooSettings | None:
    """The parsed RL Zoo3 entry for algorithm x env, None if RL Zoo3 has none."""
    entry, _, _ = read_entry(algorithm, env)
    return None if entry is None else parse_entry(algorithm, env, entry)


# -- the bench's hooks -----------------------------------------------------------------------------
@hookimpl
def polyrl_zoo_config(cell: BenchCell) -> ZooConfig | None:
    """RL Zoo3's configuration beside an sb3 cell, checked before anything trains."""
    if cell.backend != BACKEND:
        return None
    from polyrl_conformance.bench.records import ZooConfig

    entry, source, version = read_entry(cell.algorithm, cell.env)
    if entry is None:
        return ZooConfig(
            source=source, version=version, missing=f"no {cell.env} entry in {source.split(':')[0]}"
        )
    settings = parse_entry(cell.algorithm, cell.env, entry)
    as_json = json.loads(json.dumps(entry, default=str))  # as the file holds it: numbers, strings, lists
    return ZooConfig(source=source, version=version, hyperparams=as_json, n_timesteps=settings.n_timesteps)


@hookimpl
def polyrl_zoo_training(cell: BenchCell, seed: int, protocol: SeedProtocol) -> Trained | None:
    """Train RL Zoo3's configuration of an sb3 cell with SB3 directly, measured by `protocol`."""
    if cell.backend != BACKEND:
        return None
    settings = zoo_settings(cell.algorithm, cell.env)
    if settings is None:
        raise ConfigurationError(f"RL Zoo3 has no configuration for {cell.algorithm} on {cell.env}")
    from polyrl_sb3.zoo_run import train

    return train(settings, cell, seed, protocol)
