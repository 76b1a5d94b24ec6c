"""The base class of every public polyrl model."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The names in `known` that look like a misspelling or a shortening of `name`, best first."""
    names = sorted(set(known))
    similar = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    # A shortened name ("clip" for "clip_range") is too far off for difflib's ratio.
    longer = [known_name for known_name in names if len(name) >= 3 and known_name.startswith(name)]
    return list(dict.fromkeys([*similar, *longer]))[:n]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The phrase "did you mean NAME? " for a close match of `name` in `known`, else an empty string."""
    close = close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown_field_message(model: type[BaseModel], name: str) -> str:
    fields = list(model.model_fields)
    return f"not a field of {model.__name__}; {did_you_mean(name, fields)}its fields are: {', '.join(fields)}"


def _literal(message: str) -> str:
    # A custom error's message is a format template: braces in the text must survive as text.
    return message.replace("{", "{{").replace("}", "}}")


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown fields, so a typo is an error, not a default.

    An unknown field's error names the closest field ("did you mean 'n_epochs'?") at every
    nesting level, whether the document came from Python keywords, a JSON file or CLI flags.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)

    @model_validator(mode="wrap")
    @classmethod
    def _suggest_unknown_fields(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            # Only this model's own keys (loc of length 1): nested models have already named theirs.
            if not any(e["type"] == "extra_forbidden" and len(e["loc"]) == 1 for e in errors):
                raise
            details: list[InitErrorDetails] = []
            for error in errors:
                message = error["msg"]
                if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
                    message = _unknown_field_message(cls, str(error["loc"][0]))
                details.append(
                    InitErrorDetails(
                        type=PydanticCustomError(error["type"], _literal(message)),
                        loc=error["loc"],
                        input=error["input"],
                    )
                )
            raise ValidationError.from_exception_data(exc.title, details) from None


def _numeric_without_bool(annotation: Any) -> tuple[bool, bool]:
    """(mentions int or float, mentions bool or Any) anywhere in a field's type, unwrapping unions."""
    if annotation is bool or annotation is Any:
        return False, True
    if annotation is int or annotation is float:
        return True, False
    if get_origin(annotation) in (list, tuple, set, dict):
        return False, False  # containers are checked item by item (see _reject_bool_items)
    numeric = takes_bool = False
    for arg in get_args(annotation):
        n, b = _numeric_without_bool(arg)
        numeric, takes_bool = numeric or n, takes_bool or b
    return numeric, takes_bool


def _item_type(annotation: Any) -> Any:
    """The item type of a list field (through Optional), else None."""
    if get_origin(annotation) is list:
        return get_args(annotation)[0]
    for arg in get_args(annotation):
        if get_origin(arg) is list:
            return get_args(arg)[0]
    return None


def _rejects_bool(annotation: Any) -> bool:
    numeric, takes_bool = _numeric_without_bool(annotation)
    return numeric and not takes_bool


class SpecModel(StrictModel):
    """A StrictModel for specs and configs: numbers are finite and never booleans.

    pydantic would read True as 1 and accept inf/nan for floats; in a spec those are mistakes
    (`seed=True`, `learning_rate=float("inf")`), so they are rejected with a message here.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        if isinstance(value, bool) and _rejects_bool(field.annotation):
            raise PydanticCustomError(
                "bool_not_number",
                "expected a number, got the boolean {value}; write the number itself (1, not True)",
                {"value": str(value)},
            )
        item = _item_type(field.annotation)
        if (
            item is not None
            and isinstance(value, list | tuple)
            and _rejects_bool(item)
            and any(isinstance(v, bool) for v in value)
        ):
            raise PydanticCustomError(
                "bool_not_number",
                "expected numbers, got a boolean in {value}; write the numbers themselves",
                {"value": str(list(value))},
            )
        return value
