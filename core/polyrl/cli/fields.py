"""Every AgentSpec and TrainConfig field as a command-line flag, read from the pydantic models.

`polyrl train --help` and `polyrl grid --help` list these flags (grouped: agent, network, one
group per algorithm section, backend options, schedule) with their types and defaults, so a
newcomer finds `--learning-rate` without mistyping it first. The flags are shown in one style
(`--learning-rate`, `--ppo.n-epochs`); the parser accepts `_` and `-` alike.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import typer.core
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from polyrl.config import TrainConfig
from polyrl.schedules import is_schedule_model
from polyrl.spec import SECTION_NAMES, AgentSpec

if TYPE_CHECKING:
    # Typer ships its own copy of click (typer._click, no click dependency); its commands take those types.
    from typer._click import Context, HelpFormatter, Parameter

_SCALAR_NAMES = {int: "int", float: "float", str: "str", bool: "bool"}


@dataclass(frozen=True)
class FieldFlag:
    """One settable field: its flag, group, type, default and description."""

    path: tuple[str, ...]
    group: str
    type: str
    default: str
    help: str

    @property
    def flag(self) -> str:
        """The flag as help shows it: --section.field-name."""
        return "--" + ".".join(part.replace("_", "-") for part in self.path)


def type_name(annotation: Any) -> str:
    """A short, readable name of a field's type: int, float, list[int], tanh|relu, JSON object."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [type_name(arg) for arg in args if arg is not type(None)]
        return "|".join(dict.fromkeys(names))
    if origin is Literal:
        return "|".join(str(arg) for arg in args)
    if origin is list:
        return f"list[{type_name(args[0])}]" if args else "list"
    if origin is dict or annotation is dict:
        return "JSON object"
    if is_schedule_model(annotation):
        return "schedule"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return _SCALAR_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


#: Spec fields whose None means "off", not "the backend's default" (help shows what None does).
NONE_MEANS: dict[str, str] = {"prefill": "none (no prefill)"}


def _default_text(field: FieldInfo, unset: str, name: str = "") -> str:
    if field.default_factory is not None:
        return str(field.get_default(call_default_factory=True))
    if field.default is None:
        return NONE_MEANS.get(name, unset)
    return str(field.default)


def _constraints(annotation: Any) -> list[Any]:
    # Bounds sit in Annotated metadata, also inside `PositiveInt | None`.
    if typing.get_origin(annotation) is typing.Annotated:
        items = list(annotation.__metadata__)
        return [
            inner for item in items for inner in (item.metadata if isinstance(item, FieldInfo) else [item])
        ] + _constraints(typing.get_args(annotation)[0])  # a schedulable field's number branch
    return [item for arg in typing.get_args(annotation) for item in _constraints(arg)]


def _bounds(field: FieldInfo) -> str:
    bounds = []
    for item in [*field.metadata, *_constraints(field.annotation)]:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attribute, None)
            if value is not None:
                bounds.append(f"{symbol} {value}")
    return f" ({', '.join(dict.fromkeys(bounds))})" if bounds else ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if is_schedule_model(annotation):
        return None  # a schedule is a value of its field (--learning-rate lin_3e-4), not a section
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _is_list(annotation: Any) -> bool:
    """Whether a field holds a list (maybe optional): a list of models is one JSON flag, not a section."""
    if typing.get_origin(annotation) is list:
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def _flags_of(
    model: type[BaseModel], prefix: tuple[str, ...], group: str, unset: str = "backend's"
) -> list[FieldFlag]:
    flags = []
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        listed = _is_list(field.annotation)
        # sections are listed field by field in their own group; a model inside a section (its
        # action_noise) is one JSON object flag (--sac.action-noise.sigma 0.5 works too)
        nested = inner is not None and bool(prefix) and not listed
        if inner is not None and name != "env" and not listed and not nested:
            continue
        flags.append(
            FieldFlag(
                path=(*prefix, name),
                group=group,
                type="JSON list"
                if inner is not None and listed
                else "JSON object"
                if nested
                else type_name(field.annotation) + _bounds(field),
                default=_default_text(field, unset, name if not prefix else ""),
                help=field.description or "",
            )
        )
    return flags


def field_flags() -> list[FieldFlag]:
    """Every settable field of AgentSpec and TrainConfig, in help order."""
    flags = _flags_of(AgentSpec, (), "agent")
    network = _model_of(AgentSpec.model_fields["network"].annotation)
    assert network is not None
    flags += _flags_of(network, ("network",), "network")
    normalize = _model_of(AgentSpec.model_fields["normalize"].annotation)
    assert normalize is not None
    flags += _flags_of(normalize, ("normalize",), "normalize")
    for section in SECTION_NAMES:
        model = _model_of(AgentSpec.model_fields[section].annotation)
        assert model is not None
        flags += _flags_of(model, (section,), section)
    flags.append(
        FieldFlag(
            path=("backend_options", "KEY"),
            group="backend options",
            type="JSON value",
            default="",
            help="A native keyword of the backend's library, checked by name (see docs/backends/).",
        )
    )
    flags += _flags_of(TrainConfig, (), "schedule", unset="none")
    return [flag for flag in flags if flag.path != ("backend_options",)]


def _named(params: Iterable[Parameter]) -> set[str]:
    from polyrl.cli.overrides import ALIASES

    names = set()
    for param in params:
        for option in getattr(param, "opts", []):
            name = option.lstrip("-").replace("-", "_")
            names.add(ALIASES.get(name, name))
    return names


def _group_table(flags: list[FieldFlag]) -> Table:
    table = Table.grid(padding=(0, 1), expand=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(style="yellow", overflow="fold")
    table.add_column(overflow="fold")
    for flag in flags:
        default = f" [dim]\\[default: {escape(flag.default)}][/]" if flag.default else ""
        table.add_row(escape(flag.flag), escape(flag.type), escape(flag.help) + default)
    return table


class FieldFlagsCommand(typer.core.TyperCommand):
    """A typer command whose --help also lists every spec and schedule field as a flag.

    Fields the command already has as named options (e.g. --backend, --steps) are not repeated.
    """

    field_note = "Every AgentSpec and TrainConfig field is a flag: --field value or --field=value."
    #: Groups of fields the command does not take as flags (e.g. `polyrl tune`: no "schedule").
    hidden_groups: tuple[str, ...] = ()

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        named = _named(self.get_params(ctx))
        groups: dict[str, list[FieldFlag]] = {}
        for flag in field_flags():
            if flag.path[0] not in named and flag.group not in self.hidden_groups:
                groups.setdefault(flag.group, []).append(flag)
        console = Console(highlight=False)
        console.print(f" {escape(self.field_note)}", soft_wrap=False)
        for group, flags in groups.items():
            console.print(Panel(_group_table(flags), title=group, title_align="left", border_style="dim"))
