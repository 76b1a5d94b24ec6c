"""Names of experiment and run directories: data_dir/DATE_exp/DATE_TIME-exp_variant_sSEED/."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def slug(value: Any) -> str:
    """A file-name-safe rendering of a value (lists joined by 'x', other characters dropped)."""
    if isinstance(value, list | tuple):
        return "x".join(slug(v) for v in value)
    if isinstance(value, dict):
        return "-".join(f"{slug(k)}{slug(v)}" for k, v in sorted(value.items()))
    if isinstance(value, float):
        value = f"{value:g}"
    return _UNSAFE.sub("", str(value)) or "x"


def shorthand(key: str) -> str:
    """A short name for a varied field: initials of a multi-word last part (learning_rate -> lr)."""
    last = key.replace(":", ".").split(".")[-1]
    parts = [p for p in last.split("_") if p]
    return "".join(p[0] for p in parts) if len(parts) > 1 else last


def variant_name(exp_name: str, variant: dict[str, Any]) -> str:
    """The experiment name with each varied field (except the seed) as shorthand-value."""
    pieces = [exp_name] + [f"{shorthand(k)}-{slug(v)}" for k, v in variant.items() if k != "seed"]
    return "_".join(pieces)


#: The spec fields a default experiment name is made of, in order; whether their default counts.
_NAMED_FIELDS = {"backend": False, "algorithm": True, "env": True}
_MOST_VALUES = 3


def _env_label(value: Any) -> Any:
    # An env factory ("package.envs:make_maze" or {"factory": ...}) is named by its function.
    if isinstance(value, dict):
        value = value.get("factory", "env")
    return str(value).rpartition(":")[2] if isinstance(value, str) else value


def default_experiment_name(base: dict[str, Any], axes: dict[str, list[Any]]) -> str:
    """A name from the backend(s), algorithm(s) and env(s) of a grid, e.g. "sb3+tianshou_ppo_CartPole-v1".

    Values come from the grid's axes, else from the base spec document; the backend appears only
    when given. More than three values of a field become a count ("5envs").
    """
    from polyrl.spec import AgentSpec

    parts = []
    for field, use_default in _NAMED_FIELDS.items():
        values = axes.get(field) or axes.get(f"{field}.factory")
        if values is None:
            default = [AgentSpec.model_fields[field].default] if use_default else []
            values = [base[field]] if field in base else default
        if field == "env":
            values = [_env_label(v) for v in values]
        labels = list(dict.fromkeys(slug(v) for v in values))
        if len(labels) > _MOST_VALUES:
            parts.append(f"{len(labels)}{field}s")
        elif labels:
            parts.append("+".join(labels))
    return "_".join(parts)


def experiment_directory(data_dir: Path, exp_name: str, when: datetime) -> Path:
    """data_dir/YYYY-MM-DD_exp_name."""
    return Path(data_dir) / f"{when:%Y-%m-%d}_{slug(exp_name)}"


def run_directory(experiment_dir: Path, name: str, seed: int | None, when: datetime) -> Path:
    """experiment_dir/YYYY-MM-DD_HH-MM-SS-name_sSEED."""
    suffix = "" if seed is None else f"_s{seed}"
    return experiment_dir / f"{when:%Y-%m-%d_%H-%M-%S}-{slug(name)}{suffix}"
