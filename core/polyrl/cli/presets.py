"""`polyrl presets`: the presets polyrl ships, and the one `preset="auto"` picks for an env."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from polyrl.cli import render
from polyrl.cli.guard import guarded
from polyrl.errors import PolyrlError
from polyrl.presets import Preset, PresetBook, preset_book

PRESETS_HELP = (
    'List polyrl\'s presets: the settings `preset="auto"` gives the fields a spec leaves unset, per '
    "algorithm and environment (ids, id prefixes such as ALE/, or observation/action kinds for envs no "
    "preset names), with their source. --algo keeps one algorithm; --env shows the preset auto picks "
    "for that env, per algorithm (making the env only when no preset names it); --json prints JSON "
    "with every preset's settings."
)


def preset_row(preset: Preset) -> dict[str, Any]:
    """One preset as `polyrl presets --json` prints it."""
    fallback = (
        {"observation": preset.match.observation, "action": preset.match.action}
        if preset.match.is_fallback
        else None
    )
    return {
        "name": preset.name,
        "algorithm": preset.algorithm,
        "envs": list(preset.match.envs),
        "env_prefixes": list(preset.match.env_prefixes),
        "fallback": fallback,
        "source": preset.source,
        "budget_steps": preset.budget_steps,
        "backends": sorted(preset.backends),
        "settings": preset.settings,
        "layers": {name: layer.model_dump(mode="json") for name, layer in sorted(preset.backends.items())},
        "notes": preset.notes,
    }


def _env_kinds(env_id: str) -> tuple[str, str]:
    """The observation and action kinds of an env, as the core passes them to the presets."""
    from polyrl.envs import EnvSource, space_kind
    from polyrl.run import observation_kind
    from polyrl.spec import AgentSpec

    source = EnvSource.from_spec(AgentSpec(env=env_id, preset="none"))
    return observation_kind(source), space_kind(source.action_space)


def choices_for_env(book: PresetBook, env_id: str, algorithms: list[str]) -> list[dict[str, Any]]:
    """Per algorithm, the preset `preset="auto"` picks for `env_id`, and by which rule.

    The env is made (to learn its spaces) only when an algorithm has no preset naming the id and
    has fallbacks: an id a preset names needs no installed env. When the env cannot be made, those
    algorithms' rows say why in `unresolved` (their preset depends on spaces polyrl cannot see).
    """
    kinds: tuple[str, str] | None = None
    problem: str | None = None
    rows: list[dict[str, Any]] = []
    for algorithm in algorithms:
        # Kinds no fallback declares: only a preset naming the id (or a prefix of it) can match.
        chosen = book.match(algorithm, env_id, "-", "-")
        if chosen is not None and chosen[1] == "fallback":
            chosen = None  # a fallback for any kinds: decided with the env's real kinds below
        unresolved = None
        if chosen is None and any(p.match.is_fallback for p in book.for_algorithm(algorithm)):
            if kinds is None and problem is None:
                try:
                    kinds = _env_kinds(env_id)
                except PolyrlError as exc:
                    problem = f"the env's spaces are unknown ({exc})"
            if kinds is not None:
                chosen = book.match(algorithm, env_id, *kinds)
            unresolved = problem
        rows.append(
            {
                "algorithm": algorithm,
                "env": env_id,
                "preset": None if chosen is None else preset_row(chosen[0]),
                "match": None if chosen is None else chosen[1],
                "unresolved": unresolved,
            }
        )
    return rows


def _algorithms(book: PresetBook, algorithm: str | None) -> list[str]:
    """The algorithms to show: the one asked for, else every one a preset or a backend has."""
    if algorithm is not None:
        return [algorithm.strip().lower()]
    from polyrl.plugins import registry

    named = {p.algorithm for p in book.presets}
    named.update(a for info in registry().backends().values() for a in info.algorithms)
    return sorted(named)


def _matches_text(row: dict[str, Any]) -> str:
    if row["fallback"] is not None:
        kinds = row["fallback"]
        return f"fallback: {kinds['observation'] or 'any'} observations, {kinds['action'] or 'any'} actions"
    return ", ".join([*row["envs"], *(f"{prefix}*" for prefix in row["env_prefixes"])])


def presets_table(rows: list[dict[str, Any]]) -> Table:
    """The presets (rows of `preset_row`): what each is for, its budget, backend layers and source."""
    table = render.table()
    render.add_columns(table, "preset", "algorithm", "for", "budget", "layers", "source")
    for row in rows:
        budget = "-" if row["budget_steps"] is None else f"{row['budget_steps']:,}"
        table.add_row(
            escape(row["name"]),
            escape(row["algorithm"]),
            escape(_matches_text(row)),
            budget,
            escape(", ".join(row["backends"]) or "-"),
            escape(row["source"]),
        )
    return table


def choices_table(rows: list[dict[str, Any]]) -> Table:
    """Per algorithm, the preset auto picks for an env (rows of `choices_for_env`) and by which rule."""
    table = render.table()
    render.add_columns(table, "algorithm", "preset", "matched by", "source")
    for row in rows:
        preset = row["preset"]
        if preset is None:
            why = "unknown: see below" if row["unresolved"] else "none: the library's defaults"
            table.add_row(escape(row["algorithm"]), "-", why, "-")
            continue
        table.add_row(
            escape(row["algorithm"]), escape(preset["name"]), escape(row["match"]), escape(preset["source"])
        )
    return table


commands = typer.Typer()


@commands.command(help=PRESETS_HELP)
def presets(
    algorithm: Annotated[
        str | None, typer.Option("--algo", "--algorithm", help="Only this algorithm's presets.")
    ] = None,
    env: Annotated[
        str | None, typer.Option(help='The preset preset="auto" picks for this Gymnasium id, per algorithm.')
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print as JSON (with every preset's settings).")
    ] = False,
) -> None:
    def body() -> None:
        book = preset_book()
        if env is not None:
            choices = choices_for_env(book, env, _algorithms(book, algorithm))
            if as_json:
                typer.echo(json.dumps(choices, indent=2))
                return
            render.titled(f'presets for {env} (preset="auto")', choices_table(choices))
            for problem in dict.fromkeys(row["unresolved"] for row in choices if row["unresolved"]):
                render.complain(f"{problem}: a fallback by observation/action kinds may apply", label="note")
            return
        wanted = None if algorithm is None else algorithm.strip().lower()
        rows = [preset_row(p) for p in book.presets if wanted is None or p.algorithm == wanted]
        if not rows and not as_json:
            render.say(f"no presets for {wanted}: every field it leaves unset keeps the library's default")
            return
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        render.titled("polyrl presets", presets_table(rows))
        render.say('polyrl presets --json shows their settings; preset="none" keeps the library\'s defaults')

    guarded(body)


def register(app: typer.Typer) -> None:
    """Add `polyrl presets` to the `polyrl` app."""
    app.registered_commands.extend(commands.registered_commands)
