"""`polyrl record`: play a saved agent and write the played transitions as a dataset.

The same play loop as `polyrl play` (PlayConfig.record), so the file holds exactly the
episodes the printed returns describe: a .npz file, or a Minari dataset directory for any
other name (`polyrl[experience]`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from polyrl.cli import render
from polyrl.cli.guard import guarded
from polyrl.config import PlayConfig
from polyrl.experience.datasets import check_target, move_into_place

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.records import PlayResult

commands = typer.Typer()

RECORD_HELP = (
    "Play a saved agent and write every step (observation, action, reward, next observation, "
    "terminated, truncated) to a .npz file or, for any other name, a Minari dataset directory. "
    "An existing file or dataset is replaced only with --overwrite. See docs/experience.md."
)
OVERWRITE_ADVICE = (
    "choose another name, or pass --overwrite to replace it (only a .npz file or Minari dataset "
    "polyrl could have written is replaced)"
)


@commands.command(help=RECORD_HELP)
def record(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The .npz file or Minari dataset directory to write (must not exist, or --overwrite).",
        ),
    ],
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace an existing .npz experience file or Minari dataset at --out (once the episodes "
            "are played and written; never a directory holding anything else).",
        ),
    ] = False,
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
        target = check_target(out, overwrite, advice=OVERWRITE_ADVICE)  # before loading and playing
        config = PlayConfig(
            episodes=episodes, max_steps=max_steps, seed=seed, deterministic=not stochastic, record=str(out)
        )
        with polyrl.Agent.load(path, trust_env_factory=trust_env_factory, device=device) as agent:
            result = _play(agent, config, target)
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


def _play(agent: Agent, config: PlayConfig, target: Path) -> PlayResult:
    """Play and record to `target`; one that exists (allowed by --overwrite) is replaced only once
    the new dataset is complete: written under its own name in a hidden directory beside it, then
    moved into place."""
    if not target.exists():
        return agent.play(config)
    staging = Path(tempfile.mkdtemp(prefix=".polyrl-record-", dir=target.parent))
    try:
        result = agent.play(config.model_copy(update={"record": str(staging / target.name)}))
        if result.recorded is None:  # nothing was played: the old dataset stays
            return result
        move_into_place(Path(result.recorded), target)
        return result.model_copy(update={"recorded": str(target)})
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def register(app: typer.Typer) -> None:
    """Add `polyrl record` to the `polyrl` app."""
    app.registered_commands.extend(commands.registered_commands)
