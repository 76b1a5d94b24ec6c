"""Experiment commands: grid, rerun, plot, compare."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from polyrl.cli import render
from polyrl.cli.fields import FieldFlagsCommand
from polyrl.cli.guard import guarded
from polyrl.cli.overrides import read_document
from polyrl.config import TrainConfig
from polyrl.errors import ConfigurationError, RayConnectionError

if TYPE_CHECKING:
    from polyrl.experiments.grid import ExperimentGrid, GridCounts, GridResult


GRID_HELP = (
    "Run a grid of experiments, each run in its own process: every AgentSpec and TrainConfig field is a "
    "flag (--algo ppo --env CartPole-v1 --steps 50000 --gamma 0.98); repeat a flag or give a comma list "
    "to vary it (--backend sb3,tianshou --learning_rate 1e-3,3e-4 --seed 0,1,2). NAME defaults to the "
    "backends, algorithms and envs (sb3+tianshou_ppo_CartPole-v1). Runs go to "
    "DATA_DIR/DATE_NAME/DATE_TIME-NAME_VARIANT_sSEED/. Ctrl-C marks unfinished runs interrupted; "
    "--resume DIR runs them (and failed ones) again."
)
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
#: Options that shape a new grid; --resume runs the grid exactly as it was planned instead.
_PLANNING_OPTIONS = {
    "seeds": "--seeds",
    "steps": "--steps",
    "data_dir": "--data-dir",
    "eval_episodes": "--eval-episodes",
    "spec_file": "--spec",
}


def _check_resume(ctx: typer.Context, resume: Path, name: str | None, extra: list[str]) -> None:
    """--resume runs the experiment as planned: options that would change the plan are refused."""

    def given(key: str) -> bool:  # by name: typer may bring its own click, so its own enum
        source = ctx.get_parameter_source(key)
        return source is not None and source.name == "COMMANDLINE"

    dropped = [f"NAME {name}"] if name else []
    dropped += [flag for key, flag in _PLANNING_OPTIONS.items() if given(key)]
    dropped += [" ".join(extra)] if extra else []
    if dropped:
        raise ConfigurationError(f"--resume runs {resume} as it was planned; drop {', '.join(dropped)}")


def _new_grid(
    name: str | None,
    extra: list[str],
    seeds: list[str] | None,
    steps: list[int] | None,
    data_dir: Path,
    spec_file: Path | None,
) -> tuple[ExperimentGrid, dict[str, Any], TrainConfig]:
    """The grid, base spec document and train config the flags ask for; every flag is used or refused."""
    from polyrl.experiments.flags import grid_axes, grid_train_config, seed_axis
    from polyrl.experiments.grid import ExperimentGrid
    from polyrl.experiments.naming import default_experiment_name

    axes, config = grid_axes(extra)
    base = read_document(spec_file, "spec")
    axes["seed"] = seed_axis(seeds, axes, base)
    train_config = grid_train_config(steps, config)
    experiment = ExperimentGrid(name or default_experiment_name(base, axes), data_dir)
    for key, values in axes.items():
        experiment.add(key, values)
    return experiment, base, train_config


def _resume_command(
    directory: str, workers: int | None, ray_address: str | None, connect_timeout: float | None = None
) -> str:
    command = ["polyrl", "grid", "--resume", directory]
    if workers is not None:
        command += ["--workers", str(workers)]
    if ray_address:
        command += ["--ray-address", ray_address]
        if connect_timeout is not None:
            command += ["--ray-connect-timeout", f"{connect_timeout:g}"]
    return shlex.join(command)


def _plan_line(experiment: ExperimentGrid, workers: int | None, ray_address: str | None) -> str:
    from polyrl.experiments.executors import default_workers

    runs = len(experiment.variants())
    if ray_address:
        return f"{runs} run(s) as tasks on the Ray cluster at {ray_address}"
    return f"{runs} run(s), {workers or default_workers(runs)} at a time"


def _summary(counts: GridCounts) -> str:
    skipped = f" ({counts.skipped} skipped as already done)" if counts.skipped else ""
    return f"{counts.done} done{skipped}, {counts.failed} failed, {counts.interrupted} interrupted"


def _report(
    result: GridResult,
    interrupted: bool,
    as_json: bool,
    workers: int | None,
    ray_address: str | None,
    connect_timeout: float | None = None,
) -> int:
    """Print how the grid went (a line, or the JSON report) and what to do next; the exit status."""
    counts = result.counts
    if as_json:
        typer.echo(result.report().model_dump_json(indent=2))
    else:
        render.say(f"{result.experiment_dir}: {_summary(counts)}")
    for failed in result.failed:
        first = next(iter((failed.error or "").splitlines()), "no error recorded")
        render.complain(f"{failed.directory}: {first}")
    command = _resume_command(result.experiment_dir, workers, ray_address, connect_timeout)
    if counts.interrupted:
        render.complain(
            f"{counts.interrupted} run(s) did not finish; resume with: {command}", label="interrupted"
        )
    elif counts.failed:
        render.complain(f"run the failed runs again with: {command}", label="hint", style="yellow")
    if interrupted or counts.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if counts.failed else 0


class GridFlagsCommand(FieldFlagsCommand):
    """`polyrl grid --help`: every spec field is a flag, and a comma list or a repeat varies it."""

    field_note = (
        "Every AgentSpec field is a flag; a comma list or a repeated flag varies it "
        "(--learning-rate 1e-3,3e-4). TrainConfig fields take one value for every run."
    )


#: The experiment commands; `polyrl.cli.app` adds them to the `polyrl` app.
commands = typer.Typer()


@commands.command(
    cls=GridFlagsCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=GRID_HELP,
)
def grid(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Experiment name (default: from backend, algorithm and env).")
    ] = None,
    seeds: Annotated[
        list[str] | None,
        typer.Option(metavar="0,1,2", help="Comma list of seeds (same as --seed 0,1,2; default 0)."),
    ] = None,
    steps: Annotated[
        list[int] | None,
        typer.Option("--steps", "--total-steps", metavar="N", help="Env steps per run."),
    ] = None,
    data_dir: Annotated[Path, typer.Option(help="Where experiment directories go.")] = Path("data"),
    eval_episodes: Annotated[int, typer.Option(help="Deterministic episodes after each run.")] = 10,
    workers: Annotated[
        int | None, typer.Option(help="Parallel runs on this machine (default: cores).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Run on this Ray cluster (e.g. 127.0.0.1:6379 or auto).")
    ] = None,
    ray_connect_timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Give up on --ray-address if no Ray cluster answers within this time (default 30).",
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Finish an experiment directory: runs its interrupted and failed runs again."),
    ] = None,
    spec_file: Annotated[Path | None, typer.Option("--spec", help="Base AgentSpec JSON file.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (progress goes to stderr).")
    ] = False,
) -> None:
    from polyrl.experiments.grid import ExperimentGrid, GridInterrupted, run_experiment

    extra = list(ctx.args)
    if name is not None and name.startswith("--"):  # no NAME: the first free token is a flag
        extra.insert(0, name)
        name = None

    def body() -> int:
        from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT, check_connect_timeout

        console = render.errors if as_json else None
        interrupted = False
        timeout = DEFAULT_CONNECT_TIMEOUT
        if ray_connect_timeout is not None:
            timeout = check_connect_timeout(ray_connect_timeout, "--ray-connect-timeout")
        try:
            if resume is not None:
                _check_resume(ctx, resume, name, extra)
                result = ExperimentGrid.resume(
                    resume,
                    workers=workers,
                    ray_address=ray_address,
                    console=console,
                    ray_connect_timeout=timeout,
                )
            else:
                experiment, base, config = _new_grid(name, extra, seeds, steps, data_dir, spec_file)
                directory = experiment.plan(base, config, eval_episodes)  # validates every spec
                if not as_json:
                    render.say(f"{directory}: {_plan_line(experiment, workers, ray_address)}")
                try:
                    result = run_experiment(
                        directory, workers, ray_address, console=console, ray_connect_timeout=timeout
                    )
                except RayConnectionError as exc:  # the plan stays: say how to run it later
                    again = _resume_command(str(directory), workers, ray_address, ray_connect_timeout)
                    raise RayConnectionError(f"{exc} The grid is planned; run it with: {again}") from exc
        except GridInterrupted as stop:
            result, interrupted = stop.result, True
        return _report(result, interrupted, as_json, workers, ray_address, ray_connect_timeout)

    code = guarded(body)
    if code:
        raise typer.Exit(code)


@commands.command(help="Train again from a run directory's config.json into a new directory.")
def rerun(
    path: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Path | None, typer.Option(help="Directory of the new run.")] = None,
) -> None:
    from polyrl.experiments.runner import rerun as rerun_run

    def body() -> int:
        status = rerun_run(path, out)
        render.say(f"{status.status}: {status.directory} (eval return {status.eval_return_mean})")
        if status.error:
            render.complain(status.error)
        return 0 if status.status == "done" else 1

    code = guarded(body)
    if code:
        raise typer.Exit(code)


@commands.command(help="Plot learning curves (mean ± std over seeds per group) of run directories.")
def plot(
    paths: Annotated[list[Path], typer.Argument(help="Run, experiment or data directories.")],
    out: Annotated[Path, typer.Option(help="Output file stem; .png and .svg are written.")] = Path("curves"),
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", help="Spec field(s) to group by, e.g. backend.")
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric column of progress.csv.")] = "return_mean",
    x: Annotated[str, typer.Option(help="x axis column.")] = "env_steps",
    smooth: Annotated[int, typer.Option(help="Moving-average window in iterations.")] = 1,
) -> None:
    from polyrl.experiments.curves import draw_curves, save_curves
    from polyrl.experiments.results import find_runs

    def body() -> None:
        drawn = draw_curves(find_runs(paths), group_by, metric, x, smooth)
        for label in drawn.empty:
            render.complain(f"{label}: no {metric} values against {x}", label="not drawn", style="yellow")
        written = save_curves(drawn, out)
        render.say("wrote " + ", ".join(map(str, written)))

    guarded(body)


@commands.command(help="Table of final and best returns per group (mean, std over seeds) and wall time.")
def compare(
    paths: Annotated[list[Path], typer.Argument(help="Run, experiment or data directories.")],
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", help="Spec field(s) to group by.")
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric column of progress.csv.")] = "return_mean",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    from polyrl.experiments.results import find_runs, group_runs, summarize

    def body() -> None:
        groups = group_runs(find_runs(paths), list(group_by or []))
        rows = [summarize(label, runs, metric) for label, runs in groups.items()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        table = render.table(f"{metric} per group", show_lines=True)  # folded rows stay apart
        render.add_columns(table, "group", "runs", "final", "best", "eval (deterministic)", "wall s")

        def cell(mean: float | None, std: float | None) -> str:
            return "-" if mean is None else f"{mean:.1f} ± {std:.1f}"

        for row in rows:
            wall = row["wall_seconds_mean"]
            table.add_row(
                escape(row["group"]),
                str(row["runs"]),
                cell(row["final_mean"], row["final_std"]),
                cell(row["best_mean"], row["best_std"]),
                cell(row["eval_mean"], row["eval_std"]),
                "-" if wall is None else f"{wall:.1f}",
            )
        render.console.print(table)

    guarded(body)


def register(app: typer.Typer) -> None:
    """Add the experiment commands (grid, rerun, plot, compare) to the `polyrl` app."""
    app.registered_commands.extend(commands.registered_commands)
