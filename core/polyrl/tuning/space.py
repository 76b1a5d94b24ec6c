"""The search space of a study: per AgentSpec field path, the distribution its values come from.

A space is a JSON document validated like every other polyrl input:

    {"learning_rate": {"float": [1e-5, 1e-2], "log": true},
     "ppo.n_epochs": {"int": [3, 20]},
     "network.hidden": {"categorical": [[64, 64], [256, 256]]},
     "backend_options.vf_clip_param": {"categorical": [10.0, 100.0]}}

`read_space` reads a document entry by entry, so every malformed entry is named at once in the
user's words (the field path, then the distribution key). `check_space` proves a space fits a
base spec before any trial starts: every path names a field of the spec (an algorithm's own
section, a nested model, or a backend_options/env_kwargs key) that the base spec does not fix,
each distribution fits the field's type, ranges are not empty, and every value the sampler can
return at a range's ends (and every categorical choice) builds a valid AgentSpec.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    RootModel,
    Strict,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from polyrl._model import StrictModel, close_matches, did_you_mean
from polyrl.cli.overrides import merge
from polyrl.errors import SearchSpaceError
from polyrl.schedules import is_schedule_model
from polyrl.spec import SECTION_NAMES, AgentSpec

if TYPE_CHECKING:
    from optuna.trial import Trial

#: Fields a space may not vary, and why: each study has one backend, algorithm and env, and
#: every trial sets its own seeds.
RESERVED = {
    "backend": "a study searches one backend; compare backends with --backend a,b (one study each)",
    "algorithm": "a study searches one algorithm (its section's fields depend on it); run one study each",
    "env": "a study searches one environment; run one study per environment",
    "seed": "every trial sets its own seeds (--seeds, derived from the study seed)",
}
#: Fields holding free JSON keys: a path names one key, e.g. "backend_options.vf_clip_param".
FREE_KEYS = ("backend_options", "env_kwargs")
#: Fields a base spec always fixes for a study, left out of the fields "fixed by you".
STUDY_FIELDS = ("backend", "algorithm", "env", "seed")
_PRIMITIVE = (type(None), bool, int, float, str)
#: The keys of each distribution as a space document writes them.
_KEYS = {"float": ("float", "log"), "int": ("int", "log", "step"), "categorical": ("categorical",)}


class FloatDistribution(StrictModel):
    """A float from [lo, hi]: uniform, or log-uniform with `"log": true` (then lo > 0)."""

    model_config = ConfigDict(populate_by_name=True, allow_inf_nan=False)

    range: tuple[float, float] = Field(alias="float")
    """[lo, hi], both included."""
    log: Annotated[bool, Strict()] = False
    """Draw the logarithm uniformly (for scales like learning rates)."""

    @field_validator("range", mode="before")
    @classmethod
    def _no_bools(cls, value: Any) -> Any:
        # pydantic reads True as 1.0; a range of booleans is a mistake (a categorical is meant).
        if isinstance(value, list | tuple) and any(isinstance(v, bool) for v in value):
            raise ValueError('a range holds numbers; for true/false use {"categorical": [true, false]}')
        return value


class IntDistribution(StrictModel):
    """An int from [lo, hi] in steps of `step`, or log-uniform with `"log": true` (then lo > 0)."""

    model_config = ConfigDict(populate_by_name=True)

    range: tuple[Annotated[int, Strict()], Annotated[int, Strict()]] = Field(alias="int")
    """[lo, hi], both included."""
    log: Annotated[bool, Strict()] = False
    """Draw the logarithm uniformly (then `step` must be 1)."""
    step: Annotated[int, Strict(), Field(gt=0)] = 1
    """Spacing of the values lo, lo + step, ..., hi."""


class CategoricalDistribution(StrictModel):
    """One of the listed values (any JSON: numbers, strings, lists such as hidden layer sizes)."""

    model_config = ConfigDict(populate_by_name=True)

    choices: list[JsonValue] = Field(alias="categorical")
    """The values to choose from."""


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [kind for kind in ("float", "int", "categorical") if kind in value]
        return found[0] if len(found) == 1 else None
    if isinstance(value, FloatDistribution):
        return "float"
    if isinstance(value, IntDistribution):
        return "int"
    return "categorical" if isinstance(value, CategoricalDistribution) else None


Distribution = Annotated[
    Annotated[FloatDistribution, Tag("float")]
    | Annotated[IntDistribution, Tag("int")]
    | Annotated[CategoricalDistribution, Tag("categorical")],
    Discriminator(
        _kind,
        custom_error_type="distribution",
        custom_error_message='a distribution is {"float": [lo, hi]}, {"int": [lo, hi]} or '
        '{"categorical": [value, ...]} (exactly one of the three keys)',
    ),
]


class SearchSpace(RootModel[dict[str, Distribution]]):
    """{dotted AgentSpec path: distribution}; `model_dump(by_alias=True)` gives the JSON form back."""

    @model_validator(mode="after")
    def _not_empty(self) -> SearchSpace:
        if not self.root:
            raise ValueError(
                'the search space is empty; name at least one field, e.g. {"learning_rate": ...}'
            )
        return self

    def document(self) -> dict[str, Any]:
        """The space as the JSON document it was read from."""
        dumped: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return dumped

    def sample(self, trial: Trial) -> dict[str, Any]:
        """Draw every field's value through the trial (Optuna's parameter name is the path)."""
        values: dict[str, Any] = {}
        for path, distribution in self.root.items():
            if isinstance(distribution, FloatDistribution):
                low, high = distribution.range
                values[path] = trial.suggest_float(path, low, high, log=distribution.log)
            elif isinstance(distribution, IntDistribution):
                low_int, high_int = distribution.range
                values[path] = trial.suggest_int(
                    path, low_int, high_int, step=distribution.step, log=distribution.log
                )
            else:
                values[path] = _suggest_choice(trial, path, distribution.choices)
        return values


def _suggest_choice(trial: Trial, path: str, choices: list[JsonValue]) -> Any:
    # Optuna stores choices of None, bool, int, float and str; lists (hidden layer sizes) and
    # objects are offered as their JSON text, which also reads well in optuna-dashboard.
    if all(isinstance(choice, _PRIMITIVE) for choice in choices):
        return trial.suggest_categorical(path, choices)  # type: ignore[arg-type]
    texts = [json.dumps(choice, sort_keys=True) for choice in choices]
    return json.loads(trial.suggest_categorical(path, texts))


def _text(value: Any) -> str:
    return json.dumps(value, default=repr)


def _subject(kind: str, rest: tuple[Any, ...], value: Any) -> str:
    """What an error is about: `lo 3.5`, `item 2 "x"`, or the value of a key."""
    if len(rest) >= 2 and isinstance(rest[1], int):
        which = ("lo", "hi")[rest[1]] if kind != "categorical" and rest[1] in (0, 1) else f"item {rest[1]}"
        return f"{which} {_text(value)}"
    return _text(value)


def _structural(error: Any) -> str:
    """One pydantic error of a space entry, in the words of the document (without the path)."""
    loc, message, value = tuple(error["loc"][1:]), str(error["msg"]), error["input"]
    if not loc:  # the discriminator: not one of the three distributions
        return f"{message}; got {_text(value)}"
    kind, rest = str(loc[0]), loc[1:]
    key = str(rest[0]) if rest else kind
    if error["type"] == "extra_forbidden":
        keys = _KEYS[kind]
        hint = did_you_mean(key, keys)
        return f'"{key}" is not a key of a {kind} distribution; {hint}its keys are: {", ".join(keys)}'
    ranged = key == kind and kind != "categorical"
    if ranged and error["type"] in ("missing", "too_long", "too_short", "tuple_type", "list_type"):
        return f'"{kind}" takes [lo, hi] (two numbers); got {_text(value)}'
    if key == kind == "categorical" and len(rest) < 2:
        return f'"categorical" takes a list of values; got {_text(value)}'
    message = message.removeprefix("Value error, ")
    if message.startswith("Input "):
        return f'"{key}": {_subject(kind, rest, value)} {message.removeprefix("Input ")}'
    return f'"{key}": {message}'


def read_space(document: Any) -> tuple[SearchSpace | None, list[str]]:
    """The well-formed entries of a space document, and a problem per malformed one (all at once).

    Each problem starts with the field path, then the distribution key in the document's own
    words (`ppo.n_epochs: "int": lo 3.5 should be a valid integer`). None when no entry is usable.
    """
    if isinstance(document, SearchSpace):
        return document, []
    if not isinstance(document, dict):
        return None, [f"a search space is a JSON object {{field path: distribution}}, not {_text(document)}"]
    if not document:
        return None, ['the search space is empty; name at least one field, e.g. {"learning_rate": ...}']
    problems: list[str] = []
    good: dict[str, Any] = {}
    for path, value in document.items():
        try:
            SearchSpace.model_validate({path: value})
        except ValidationError as exc:
            reasons = [_structural(error) for error in exc.errors()]
            problems.extend(f"{path}: {reason}" for reason in dict.fromkeys(reasons))
        else:
            good[path] = value
    return (SearchSpace.model_validate(good) if good else None), problems


def first_values(space: SearchSpace) -> dict[str, Any]:
    """Each path's first categorical choice or its range's lower end."""
    return {path: _values_to_check(distribution)[0] for path, distribution in space.root.items()}


def field_values(document: Mapping[str, Any]) -> dict[str, Any]:
    """A spec document as {field path: value}: sections and nested models by field, one path per
    backend_options/env_kwargs key; an empty section holds no path, `env` is one value."""
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key in FREE_KEYS and isinstance(value, dict):
            values.update({f"{key}.{name}": item for name, item in value.items()})
        elif key != "env" and isinstance(value, dict):
            values.update({f"{key}.{path}": item for path, item in field_values(value).items()})
        else:
            values[key] = value
    return values


def fixed_fields(spec: AgentSpec) -> dict[str, Any]:
    """The fields the user set in a base spec (flags, --spec, the Python spec), by path; the
    study fields (backend, algorithm, env, seed) are left out."""
    given = field_values(spec.model_dump(mode="json", exclude_unset=True))
    return {path: value for path, value in given.items() if path.split(".")[0] not in STUDY_FIELDS}


def covers(fixed: str, path: str) -> bool:
    """Whether fixing the field `fixed` fixes the searched `path` (the same field, or its section)."""
    return path == fixed or path.startswith(fixed + ".")


def value_at(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a spec document; None where it has none."""
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def nested(path: str, value: Any) -> dict[str, Any]:
    """{"ppo": {"n_epochs": 4}} for ("ppo.n_epochs", 4)."""
    *outer, inner = path.split(".")
    document: dict[str, Any] = {inner: value}
    for part in reversed(outer):
        document = {part: document}
    return document


def with_values(base: AgentSpec, values: dict[str, Any]) -> AgentSpec:
    """The base spec with each path set to its value, validated; the base's env callable is kept."""
    document = base.model_dump(mode="json", exclude_unset=True)
    for path, value in values.items():
        document = merge(document, nested(path, value))
    spec = AgentSpec.model_validate(document)
    if not isinstance(base.env, str):
        spec.env = base.env  # the same factory, with the callable a script passed
    return spec


# -- checking a space against a base spec ----------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if is_schedule_model(annotation):
        return []  # a schedule is a value of its field (learning_rate), not a section to search in
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _kinds(annotation: Any) -> set[str]:
    """The JSON kinds a field takes: int, float, bool, str, list, object (None is left out)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return {kind for arg in typing.get_args(annotation) for kind in _kinds(arg)}
    if origin is Literal:
        return {_kind_of_value(arg) for arg in typing.get_args(annotation)} - {"null"}
    if origin in (list, tuple):
        return {"list"}
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel | dict)):
        return {"object"}
    names = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}
    return {names[annotation]} - {"null"} if annotation in names else {"json"}


def _kind_of_value(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value), "json")


def _leaf(path: str, algorithm: str) -> Any:
    """The annotation of the field `path` names (None: a free JSON key); ValueError says why not."""
    parts = path.split(".")
    if not all(parts):
        raise ValueError("malformed path; write fields as section.field, e.g. ppo.n_epochs")
    head = parts[0]
    fields = list(AgentSpec.model_fields)
    if head not in AgentSpec.model_fields:
        close = close_matches(head, fields, n=1)
        hint = f"did you mean {'.'.join([close[0], *parts[1:]])!r}? " if close else ""
        raise ValueError(f"not an AgentSpec field; {hint}the fields are: {', '.join(fields)}")
    if head in RESERVED:
        raise ValueError(f"cannot be searched: {RESERVED[head]}")
    if head in FREE_KEYS:
        if len(parts) != 2:
            raise ValueError(f"name one key of {head}, e.g. {head}.KEY")
        return None
    if head in SECTION_NAMES and head != algorithm:
        raise ValueError(
            f"the {head!r} section applies to algorithm {head!r}, but this study's algorithm is "
            f"{algorithm!r}; search {algorithm}.FIELD instead"
        )
    annotation = AgentSpec.model_fields[head].annotation
    for index, part in enumerate(parts[1:], start=1):
        models = _models_in(annotation) if "list" not in _kinds(annotation) else []
        where = ".".join(parts[:index])
        if not models:
            raise ValueError(f"{where} is not a section: it has no field {part!r}")
        model = models[0]
        if part not in model.model_fields:
            close = close_matches(part, model.model_fields, n=1)
            hint = f"did you mean {where + '.' + close[0]!r}? " if close else ""
            raise ValueError(
                f"{where} has no field {part!r}; {hint}its fields are: {', '.join(model.model_fields)}"
            )
        annotation = model.model_fields[part].annotation
    if "list" not in _kinds(annotation) and _models_in(annotation):
        first = next(iter(_models_in(annotation)[0].model_fields))
        raise ValueError(f"is a section; search one of its fields, e.g. {path}.{first}")
    return annotation


def _type_problem(distribution: Any, annotation: Any) -> str | None:
    if annotation is None or isinstance(distribution, CategoricalDistribution):
        return None
    kinds = _kinds(annotation)
    shown = "|".join(sorted(kinds))
    if isinstance(distribution, FloatDistribution) and "float" not in kinds:
        if "int" in kinds:
            return 'a float distribution on an int field; use {"int": [lo, hi]}'
        return f'a float distribution on a {shown} field; use {{"categorical": [...]}}'
    if isinstance(distribution, IntDistribution) and not kinds & {"int", "float"}:
        return f'an int distribution on a {shown} field; use {{"categorical": [...]}}'
    return None


def _range_problem(distribution: Any) -> str | None:
    if isinstance(distribution, CategoricalDistribution):
        if not distribution.choices:
            return "the categorical list is empty; give at least two values"
        texts = [json.dumps(choice, sort_keys=True) for choice in distribution.choices]
        repeated = sorted({text for text in texts if texts.count(text) > 1})
        if repeated:
            return f"the categorical list repeats {', '.join(repeated)}; list each value once"
        return None
    low, high = distribution.range
    if low > high:
        return f"the range [{low}, {high}] is inverted; write [lo, hi] with lo < hi"
    if low == high:
        return f"the range [{low}, {high}] holds one value; fix the field with --{{path}} {low} instead"
    if distribution.log and low <= 0:
        return f'a log range must start above 0, got [{low}, {high}]; raise lo or drop "log"'
    if isinstance(distribution, IntDistribution) and distribution.step != 1:
        if distribution.log:
            return 'a log int range takes no step (Optuna draws its logarithm); drop "step" or "log"'
        if (high - low) % distribution.step:
            return f"hi - lo ({high - low}) is not a multiple of step {distribution.step}"
    return None


def _values_to_check(distribution: Any) -> list[Any]:
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return list(distribution.range)


def _rejection(base: dict[str, Any], path: str, value: Any) -> str | None:
    """Why AgentSpec rejects `value` at `path` on the base document, or None."""
    try:
        AgentSpec.model_validate(merge(base, nested(path, value)))
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(part) for part in error['loc']) or 'spec'}: {error['msg']}"
            for error in exc.errors()
        ]
        return "; ".join(reasons)
    return None


def _fixed_problem(path: str, fixed: Mapping[str, Any]) -> str | None:
    for name, value in fixed.items():
        if covers(name, path):
            return (
                f"fixed to {_text(value)} by your spec (the flag --{name} or --spec) and searched by the "
                "space; a field is either fixed or searched: drop it from the space, or drop the fixed value"
            )
    return None


def space_problems(space: SearchSpace, base: AgentSpec, fixed: Mapping[str, Any] | None = None) -> list[str]:
    """Every reason a path of `space` cannot be searched on `base`, each starting with the path.

    `fixed` ({path: value}, see fixed_fields) are the fields the user fixed: searching one of them
    is a problem too.
    """
    document = base.model_dump(mode="json", exclude_unset=True)
    problems: list[str] = []
    for path, distribution in space.root.items():
        try:
            annotation = _leaf(path, base.algorithm)
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
            continue
        problem = (
            _fixed_problem(path, fixed or {})
            or _type_problem(distribution, annotation)
            or _range_problem(distribution)
        )
        if problem is not None:
            problems.append(f"{path}: {problem.replace('{path}', path)}")
            continue
        for value in _values_to_check(distribution):
            reason = _rejection(document, path, value)
            if reason is not None:
                what = "the choice" if isinstance(distribution, CategoricalDistribution) else "the range end"
                problems.append(f"{path}: {what} {json.dumps(value)} is rejected by AgentSpec ({reason})")
    return problems


def space_error(base: AgentSpec, problems: list[str]) -> SearchSpaceError:
    """The SearchSpaceError listing `problems`, one a line."""
    return SearchSpaceError(
        f"the search space for {base.backend}/{base.algorithm} cannot be searched:\n  "
        + "\n  ".join(problems)
    )


def check_space(space: SearchSpace, base: AgentSpec, fixed: Mapping[str, Any] | None = None) -> None:
    """Raise SearchSpaceError naming every path of `space` that cannot be searched on `base`
    (including those in `fixed`, the fields the user fixed; see fixed_fields)."""
    problems = space_problems(space, base, fixed)
    if problems:
        raise space_error(base, problems)


def is_finite(values: Iterable[float | None]) -> bool:
    """Whether every value is a finite number (no None, NaN or infinity)."""
    return all(value is not None and math.isfinite(value) for value in values)
