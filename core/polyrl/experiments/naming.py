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


def experiment_directory(data_dir: Path, exp_name: str, when: datetime) -> Path:
    """data_dir/YYYY-MM-DD_exp_name."""
    return Path(data_dir) / f"{when:%Y-%m-%d}_{slug(exp_name)}"


def run_directory(experiment_dir: Path, name: str, seed: int | None, when: datetime) -> Path:
    """experiment_dir/YYYY-MM-DD_HH-MM-SS-name_sSEED."""
    suffix = "" if seed is None else f"_s{seed}"
    return experiment_dir / f"{when:%Y-%m-%d_%H-%M-%S}-{slug(name)}{suffix}"
