"""Grid command-line flags: which `--field value` flags vary, the seeds, the shared TrainConfig.

No value given on the command line is dropped: a flag is an axis, a TrainConfig field or an error.
"""

from __future__ import annotations

from typing import Any

from polyrl.cli.overrides import is_list_field, parse_flags
from polyrl.config import TrainConfig
from polyrl.errors import ConfigurationError
from polyrl.spec import AgentSpec


def grid_axes(extra: list[str]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Split `--field value` flags into varied axes and TrainConfig fields.

    A field varies when its flag is repeated (`--backend sb3 --backend tianshou`) or, for fields
    that are not lists, when its value is a comma list (`--learning_rate 1e-3,3e-4`).
    """
    axes: dict[str, list[Any]] = {}
    config: dict[str, Any] = {}
    for path, values in parse_flags(extra, keep_repeats=True).items():
        key = ".".join(path)
        if path[0] in TrainConfig.model_fields:
            if len(values) > 1 or isinstance(values[0], list):
                raise ConfigurationError(
                    f"--{key} is a TrainConfig field: every run of a grid shares one value"
                )
            config[path[0]] = values[0]
        elif path[0] in AgentSpec.model_fields:
            if len(values) == 1 and isinstance(values[0], list) and not is_list_field(AgentSpec, path):
                values = values[0]
            axes[key] = values
        else:
            raise ConfigurationError(
                f"unknown option --{key}; grid options are AgentSpec fields "
                f"({', '.join(sorted(AgentSpec.model_fields))}) and TrainConfig fields "
                f"({', '.join(sorted(TrainConfig.model_fields))})"
            )
    return axes, config


def seed_axis(seeds: list[str] | None, axes: dict[str, list[Any]], base: dict[str, Any]) -> list[Any]:
    """The seeds to vary: --seeds or the spec field --seed (never both), else the spec file's, else 0."""
    if seeds and "seed" in axes:
        raise ConfigurationError(
            f"both --seed ({', '.join(map(str, axes['seed']))}) and --seeds ({', '.join(seeds)}) give the "
            "seeds of the grid; give one of them, e.g. --seed 0,1,2"
        )
    if seeds:
        values = [item.strip() for entry in seeds for item in entry.split(",") if item.strip()]
        try:
            return [int(value) for value in values]
        except ValueError:
            raise ConfigurationError(f"--seeds takes integers, e.g. --seeds 0,1,2 (got {values})") from None
    return axes.get("seed", [base.get("seed", 0)])


def grid_train_config(steps: list[int] | None, config: dict[str, Any]) -> TrainConfig:
    """The shared TrainConfig: --steps or the field --total_steps (given once), and the other fields."""
    given = [("--steps", value) for value in steps or []]
    if "total_steps" in config:
        given.append(("--total_steps", config["total_steps"]))
    if len(given) > 1:
        raise ConfigurationError(
            f"total steps given {len(given)} times ({', '.join(f'{flag} {value}' for flag, value in given)});"
            " every run of a grid shares one value: give it once"
        )
    if given:
        config["total_steps"] = given[0][1]
    return TrainConfig.model_validate(config)
