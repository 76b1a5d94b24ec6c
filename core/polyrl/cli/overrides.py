"""Turn `--field value` command-line options into validated AgentSpec / TrainConfig documents.

Values are read as JSON literals when they parse (numbers, true/false, null, lists, objects) and
kept as strings otherwise; comma lists become lists. Nothing is ever evaluated as code.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from polyrl.errors import ConfigurationError

_NESTING = (".", ":")
#: Short flag names the CLI accepts for fields, as in `polyrl train --algo ppo --steps 50000`.
ALIASES = {"algo": "algorithm", "steps": "total_steps"}


def normalize_flag(name: str) -> str:
    """Click's token normaliser: option names match with `_` or `-` (--eval_episodes, --eval-episodes)."""
    return name.replace("_", "-")


def parse_value(raw: str) -> Any:
    """A JSON literal if `raw` is one, a list for comma-separated items, else the string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    if "," in raw:
        return [parse_value(item.strip()) for item in raw.split(",") if item.strip()]
    return raw


def _split_key(flag: str) -> tuple[str, ...]:
    key = flag[2:]
    for separator in _NESTING[1:]:
        key = key.replace(separator, _NESTING[0])
    parts = tuple(part.replace("-", "_") for part in key.split(_NESTING[0]))
    if not all(parts):
        raise ConfigurationError(f"malformed option {flag!r}; use --field value or --section.field value")
    return (ALIASES.get(parts[0], parts[0]), *parts[1:])


def parse_flags(args: Iterable[str], keep_repeats: bool = False) -> dict[tuple[str, ...], Any]:
    """Read `--key value`, `--key=value`, `--section.key value` and bare `--switch` (= true).

    A key given more than once collects its values into a list (repeated flags are lists); with
    `keep_repeats` every key maps to the list of values it was given, one per occurrence.
    """
    tokens = list(args)
    raw: dict[tuple[str, ...], list[Any]] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or token == "--":
            raise ConfigurationError(
                f"unexpected argument {token!r}; options look like --field value (e.g. --gamma 0.98)"
            )
        if "=" in token:
            flag, _, value = token.partition("=")
            index += 1
        elif index + 1 < len(tokens) and not tokens[index + 1].startswith("--"):
            flag, value = token, tokens[index + 1]
            index += 2
        else:
            flag, value = token, "true"
            index += 1
        raw.setdefault(_split_key(flag), []).append(parse_value(value))
    if keep_repeats:
        return raw
    return {key: values[0] if len(values) == 1 else _flatten(values) for key, values in raw.items()}


def _flatten(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = document
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def route(
    flags: Mapping[tuple[str, ...], Any], models: Mapping[str, type[BaseModel]]
) -> dict[str, dict[str, Any]]:
    """Split flags among the models whose top-level field they name; unknown names are errors."""
    documents: dict[str, dict[str, Any]] = {name: {} for name in models}
    for path, value in flags.items():
        owner = next((name for name, model in models.items() if path[0] in model.model_fields), None)
        if owner is None:
            fields = [field for model in models.values() for field in model.model_fields]
            close = difflib.get_close_matches(path[0], fields, n=1)
            hint = f"did you mean --{close[0]}? " if close else ""
            known = "; ".join(
                f"{name}: {', '.join(sorted(model.model_fields))}" for name, model in models.items()
            )
            raise ConfigurationError(
                f"unknown option --{'.'.join(path)}; {hint}the settable fields are {known} "
                "(nested ones as --section.field, e.g. --ppo.n_epochs 4)"
            )
        _set(documents[owner], path, value)
    return documents


def merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` laid over it, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_document(path: Path | None, what: str) -> dict[str, Any]:
    """A JSON object from a file given on the command line, or {} when no file was given."""
    if path is None:
        return {}
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{what} file {path} does not exist") from exc
    except ValueError as exc:
        raise ConfigurationError(f"{what} file {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigurationError(f"{what} file {path} must hold a JSON object, not {type(document).__name__}")
    return document


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is list:
        return True
    if origin in (Union, UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return False


def is_list_field(model: type[BaseModel], path: tuple[str, ...]) -> bool:
    """Whether the (nested) field at `path` holds a list, e.g. ("network", "hidden") of AgentSpec."""
    current: list[type[BaseModel]] = [model]
    annotation: Any = None
    for part in path:
        owner = next((m for m in current if part in m.model_fields), None)
        if owner is None:
            return False
        annotation = owner.model_fields[part].annotation
        current = _models_in(annotation)
    return _is_list(annotation)
