"""`polyrl record`: play a saved agent and write the played transitions as a dataset.

The same play loop as `polyrl play` (PlayConfig.record), so the file holds exactly the
episodes the printed returns describe: a .npz file, or a Minari dataset directory for any
other name (`polyrl[experience]`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli import render
from polyrl.cli.guard import guarded
from polyrl.config import PlayConfig

commands = typer.Typer()

RECORD_HELP = (
    "Play a saved agent and write every step (observation, action, reward, next observation, "
    "terminated, truncated) to a .npz file or, for any other name, a Minari dataset directory. "
    "An existing file or dataset is never replaced. See docs/experience.md."
)


@commands.command(help=RECORD_HELP)
def record(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    out: Annotated[
        Path,
        typer.Option("--out", help="The .npz file or Minari dataset directory to write (must not exist)."),
    ],
    episodes: Annotated[int, typer.Option(help="Episodes to play and record.")] = 10,
    max_steps: Annotated[int | None, typer.Option(help="Cut episodes after this many steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first episode.")] = None,
    stochastic: Annotated[bool, typer.Option(help="Sample actions instead of the greedy ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
    trust_env_factory: Annotated[
        bool,
        typer.Option(
            "--trust-env-factory",
            help="Import and call the env factory the checkpoint names (runs code from the checkpoint: "
            "only for checkpoints you trust; see docs/security.md).",
        ),
    ] = False,
    device: Annotated[
        str | None,
        typer.Option(help="Load onto this device instead of the saved spec's (cpu, cuda, cuda:N, auto)."),
    ] = None,
) -> None:
    import polyrl

    def body() -> None:
        config = PlayConfig(
            episodes=episodes,
            max_steps=max_steps,
            seed=seed,
            deterministic=not stochastic,
            record=str(out),
        )
        with polyrl.Agent.load(path, trust_env_factory=trust_env_factory, device=device) as agent:
            result = agent.play(config)
        summary = {
            "path": result.recorded,
            "format": "npz" if out.suffix.lower() == ".npz" else "minari",
            "episodes": len(result.episodes),
            "transitions": result.total_steps,
            "return_mean": result.return_mean,
            "deterministic": result.deterministic,
            "result": result.model_dump(mode="json"),
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        actions = "stochastic" if stochastic else "deterministic"
        render.titled(
            f"recording of {path}: {episodes} episode(s), {actions} actions", render.play_table(result)
        )
        mean = "n/a" if result.return_mean is None else f"{result.return_mean:.2f}"
        render.say(
            f"wrote {summary['transitions']} transitions of {summary['episodes']} episode(s) "
            f"(return mean {mean}) to {result.recorded}"
        )

    guarded(body)


def register(app: typer.Typer) -> None:
    """Add `polyrl record` to the `polyrl` app."""
    app.registered_commands.extend(commands.registered_commands)
