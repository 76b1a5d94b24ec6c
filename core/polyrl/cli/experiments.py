"""Experiment commands: grid, rerun, plot, compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from polyrl.cli import render
from polyrl.cli.overrides import is_list_field, parse_flags, read_document
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


def register(app: typer.Typer, guarded: Any) -> None:
    """Add the experiment commands to the `polyrl` app."""

    @app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        help="Run a grid of experiments, each run in its own process: every AgentSpec field is a flag; "
        "repeat a flag or give a comma list to vary it (--backend sb3,tianshou --learning_rate 1e-3,3e-4). "
        "Runs go to DATA_DIR/DATE_NAME/DATE_TIME-NAME_VARIANT_sSEED/.",
    )
    def grid(
        ctx: typer.Context,
        name: Annotated[str | None, typer.Argument(help="Experiment name.")] = None,
        seeds: Annotated[str, typer.Option(help="Comma list of seeds.")] = "0",
        steps: Annotated[
            int | None, typer.Option("--steps", "--total-steps", help="Env steps per run.")
        ] = None,
        data_dir: Annotated[Path, typer.Option(help="Where experiment directories go.")] = Path("data"),
        eval_episodes: Annotated[int, typer.Option(help="Deterministic episodes after each run.")] = 10,
        workers: Annotated[
            int | None, typer.Option(help="Parallel runs on this machine (default: cores).")
        ] = None,
        ray_address: Annotated[
            str | None, typer.Option(help="Run on this Ray cluster (e.g. 127.0.0.1:6379 or auto).")
        ] = None,
        resume: Annotated[
            Path | None, typer.Option(help="Finish an interrupted experiment directory; skips done runs.")
        ] = None,
        spec_file: Annotated[Path | None, typer.Option("--spec", help="Base AgentSpec JSON file.")] = None,
    ) -> None:
        from polyrl.experiments.grid import ExperimentGrid

        def body() -> int:
            if resume is not None:
                result = ExperimentGrid.resume(resume, workers=workers, ray_address=ray_address)
            else:
                if not name:
                    raise ConfigurationError(
                        "give the experiment a name: polyrl grid NAME --backend sb3,tianshou ..."
                    )
                axes, config = grid_axes(list(ctx.args))
                if steps is not None:
                    config["total_steps"] = steps
                experiment = ExperimentGrid(name, data_dir)
                for key, values in axes.items():
                    experiment.add(key, values)
                experiment.add("seed", [int(s) for s in seeds.split(",") if s.strip()])
                result = experiment.run(
                    read_document(spec_file, "spec"),
                    TrainConfig.model_validate(config),
                    eval_episodes=eval_episodes,
                    workers=workers,
                    ray_address=ray_address,
                )
            done = sum(r.status == "done" for r in result.runs)
            failed, skipped = len(result.failed), len(result.skipped)
            render.console.print(f"{result.experiment_dir}: {done} done, {failed} failed, {skipped} skipped")
            for failed in result.failed:
                first = (failed.error or "").splitlines()[0]
                render.errors.print(f"[red]failed[/] {failed.directory}: {first}", markup=True)
            return 1 if result.failed else 0

        code = guarded(body)
        if code:
            raise typer.Exit(code)

    @app.command(help="Train again from a run directory's config.json into a new directory.")
    def rerun(
        path: Annotated[Path, typer.Argument(help="Run directory.")],
        out: Annotated[Path | None, typer.Option(help="Directory of the new run.")] = None,
    ) -> None:
        from polyrl.experiments.runner import rerun as rerun_run

        def body() -> int:
            status = rerun_run(path, out)
            render.console.print(
                f"{status.status}: {status.directory} (eval return {status.eval_return_mean})"
            )
            if status.error:
                render.errors.print(status.error)
            return 0 if status.status == "done" else 1

        code = guarded(body)
        if code:
            raise typer.Exit(code)

    @app.command(help="Plot learning curves (mean ± std over seeds per group) of run directories.")
    def plot(
        paths: Annotated[list[Path], typer.Argument(help="Run, experiment or data directories.")],
        out: Annotated[Path, typer.Option(help="Output file stem; .png and .svg are written.")] = Path(
            "curves"
        ),
        group_by: Annotated[
            list[str] | None, typer.Option("--group-by", help="Spec field(s) to group by, e.g. backend.")
        ] = None,
        metric: Annotated[str, typer.Option(help="Metric column of progress.csv.")] = "return_mean",
        x: Annotated[str, typer.Option(help="x axis column.")] = "env_steps",
        smooth: Annotated[int, typer.Option(help="Moving-average window in iterations.")] = 1,
    ) -> None:
        from polyrl.experiments.curves import plot_curves
        from polyrl.experiments.results import find_runs

        def body() -> None:
            written = plot_curves(find_runs(paths), out, group_by, metric, x, smooth)
            render.console.print("wrote " + ", ".join(map(str, written)))

        guarded(body)

    @app.command(help="Table of final and best returns per group (mean, std over seeds) and wall time.")
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
            table = Table(title=f"{metric} per group")
            for column in ("group", "runs", "final", "best", "eval (deterministic)", "wall s"):
                table.add_column(column)

            def cell(mean: float | None, std: float | None) -> str:
                return "-" if mean is None else f"{mean:.1f} ± {std:.1f}"

            for row in rows:
                wall = row["wall_seconds_mean"]
                table.add_row(
                    row["group"],
                    str(row["runs"]),
                    cell(row["final_mean"], row["final_std"]),
                    cell(row["best_mean"], row["best_std"]),
                    cell(row["eval_mean"], row["eval_std"]),
                    "-" if wall is None else f"{wall:.1f}",
                )
            render.console.print(table)

        guarded(body)
