"""`polyrl tune NAME`: an Optuna study over any backend's spec, from the command line."""

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
from polyrl.cli.overrides import merge, parse_flags, read_document, route
from polyrl.errors import ConfigurationError
from polyrl.spec import AgentSpec

if TYPE_CHECKING:
    from polyrl.tuning.results import StudySummary, TrialRow, TuneReport

TUNE_HELP = (
    "Search hyperparameters with Optuna: every trial trains the spec with values drawn from a search "
    "space (--space FILE, default: polyrl's ready space for --algo), is evaluated deterministically "
    "every --eval-every env steps and pruned when it falls behind. --env is required. Fixed fields are "
    "flags as in `polyrl train` (--gamma 0.98) or --spec FILE: they are never searched (left out of the "
    "ready space; an error in a --space file). Trials' seeds derive from --study-seed (--seed is "
    "refused). --backend sb3,tianshou runs one study per backend and compares them. Results go to --out "
    "(default runs/tune/NAME): one run directory per trial and seed, best.json, plots, and the study in "
    "study.db (or --storage URL)."
)
EXIT_NO_RESULT = 1
EXIT_INTERRUPTED = 130


class TuneFlagsCommand(FieldFlagsCommand):
    """`polyrl tune --help`: the fixed AgentSpec fields are flags (no schedule: trials have their own)."""

    field_note = (
        "Every AgentSpec field is a flag that fixes it for every trial (--gamma 0.98, --ppo.n-epochs 4); "
        "the search space decides the rest. --env is required; --seed is refused (use --study-seed)."
    )
    hidden_groups = ("schedule",)


def _base_document(spec_file: Path | None, algorithm: str | None, extra: list[str]) -> dict[str, Any] | None:
    """The base spec from --spec, --algo and field flags; None when none of them was given."""
    if spec_file is None and algorithm is None and not extra:
        return None
    flags = route(parse_flags(extra), {"spec": AgentSpec})["spec"]
    document = merge(read_document(spec_file, "spec"), flags)
    if algorithm is not None:
        document["algorithm"] = algorithm
    return document


def _backends(backend: str | None) -> list[str] | None:
    if backend is None:
        return None
    return [item.strip() for item in backend.split(",") if item.strip()]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _params(row: TrialRow) -> str:
    return "\n".join(f"{name}={json.dumps(value)}" for name, value in row.params.items())


def _print_failures(summary: StudySummary) -> None:
    counts = summary.counts
    if counts.total and counts.failed == counts.total:
        # Nothing to rank: one line says so, then each other reason once with its trials.
        reasons: dict[str, list[int]] = {}
        for row in summary.failed:
            reasons.setdefault(row.reason or "no reason recorded", []).append(row.number)
        first, *others = reasons
        render.say(f"all {counts.total} trials failed: first reason: {first}")
        for reason in others:
            numbers = ", ".join(map(str, reasons[reason]))
            render.complain(f"trial {numbers} failed: {reason}", label="failed", style="yellow")
        return
    if not summary.top:
        render.say(
            f"no trial completed ({counts.pruned} pruned, {counts.failed} failed, "
            f"{counts.interrupted} interrupted)"
        )
    for row in summary.failed:
        render.complain(f"trial {row.number} failed: {row.reason}", label="failed", style="yellow")


def _print_study(summary: StudySummary) -> None:
    counts = summary.counts
    render.say(
        f"study {summary.study} ({summary.backend}): {counts.complete} complete, {counts.pruned} pruned, "
        f"{counts.failed} failed"
        + (f", {counts.interrupted} interrupted" if counts.interrupted else "")
        + f"; {summary.wall_seconds:.1f} s"
    )
    if summary.top:
        table = render.table(f"top trials of {summary.study}", show_lines=True)
        render.add_columns(table, "trial", "value", "parameters", "seconds")
        for row in summary.top:
            seconds = "-" if row.seconds is None else f"{row.seconds:.1f}"
            table.add_row(str(row.number), _number(row.value), escape(_params(row)), seconds)
        render.console.print(table)
    _print_failures(summary)
    if summary.best is not None:
        render.say(
            f"best: trial {summary.best.number} with {_number(summary.best.value)}; spec: {summary.best_spec}"
        )
    if summary.fresh is not None:
        fresh = summary.fresh
        render.say(
            f"fresh seeds {', '.join(map(str, fresh.seeds))}: final evaluation "
            f"{_number(fresh.mean)} ± {_number(fresh.std)}"
        )
    if summary.plots:
        render.say("plots: " + ", ".join(summary.plots))
    render.say(f"open the study: {summary.dashboard}")


def _print_report(report: TuneReport) -> None:
    render.say(
        f"searched: {', '.join(report.searched)}; fixed by you: {', '.join(report.fixed) or 'nothing'}"
    )
    for summary in report.studies:
        _print_study(summary)
    if report.comparison:
        table = render.table(f"{report.name}: backends compared (same space and budget)")
        render.add_columns(table, "backend", "best value", "at trial", "complete", "pruned", "failed",
                           "fresh seeds", "wall s")  # fmt: skip
        for row in report.comparison:
            table.add_row(
                escape(row.backend),
                _number(row.best_value),
                "-" if row.best_trial is None else str(row.best_trial),
                str(row.complete),
                str(row.pruned),
                str(row.failed),
                _number(row.fresh_mean),
                f"{row.wall_seconds:.1f}",
            )
        render.console.print(table)


def _resume_command(name: str, out: Path | None, workers: int | None, ray_address: str | None) -> str:
    command = ["polyrl", "tune", name, "--resume"]
    if out is not None:
        command += ["--out", str(out)]
    if workers is not None:
        command += ["--workers", str(workers)]
    if ray_address:
        command += ["--ray-address", ray_address]
    return shlex.join(command)


#: The tune command; `polyrl.cli.app` adds it to the `polyrl` app.
commands = typer.Typer()

IntOption = Annotated[int | None, typer.Option()]


@commands.command(
    cls=TuneFlagsCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=TUNE_HELP,
)
def tune(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Study name (the directory runs/tune/NAME by default).")],
    backend: Annotated[
        str | None, typer.Option(help="Backend, or a comma list: one study per backend, compared at the end.")
    ] = None,
    algorithm: Annotated[
        str | None, typer.Option("--algo", "--algorithm", help="Algorithm, e.g. ppo.")
    ] = None,
    space_file: Annotated[
        Path | None,
        typer.Option("--space", help="Search space JSON file (default: the algorithm's ready space)."),
    ] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="Base AgentSpec JSON file; flags override it.")
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="Trials per study over all workers (default 20).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Env steps per trial and seed (default 20000).")] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Env steps between evaluations reported to the pruner (default 2000).")
    ] = None,
    eval_episodes: Annotated[
        int | None, typer.Option(help="Deterministic episodes per evaluation (default 5).")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="Seeds per trial; the objective is their mean (default 1).")
    ] = None,
    fresh_seeds: Annotated[
        int | None,
        typer.Option(help="Seeds the best spec is re-trained on after the study (default 2; 0: none)."),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            help="final (default: the last evaluation) or mean (of all evaluations: learning speed)."
        ),
    ] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe (default) or random.")] = None,
    pruner: Annotated[str | None, typer.Option(help="median (default), hyperband, halving or none.")] = None,
    startup_trials: Annotated[
        int | None, typer.Option(help="Trials before TPE models and the median pruner start (default 5).")
    ] = None,
    warmup_steps: Annotated[
        int | None, typer.Option(help="Env steps before the median pruner may prune (default steps/3).")
    ] = None,
    study_seed: Annotated[
        int | None, typer.Option(help="Seed of the sampler and the trials' seeds (default 0).")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Trials in the table of best trials (default 10).")] = None,
    out: Annotated[Path | None, typer.Option(help="Tune directory (default runs/tune/NAME).")] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna database URL (default: sqlite:///OUT/study.db), e.g. postgresql://..."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the study in --out as it was planned.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes on the study (default 1, this process).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Run the workers as Ray tasks on this cluster (e.g. 127.0.0.1:6379).")
    ] = None,
    ray_connect_timeout: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Give up on --ray-address after this time (default 30)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (the report); trial lines go to stderr.")
    ] = False,
) -> None:
    extra = list(ctx.args)

    def body() -> int:
        import polyrl
        from polyrl.ray_connect import DEFAULT_CONNECT_TIMEOUT

        if name.startswith("--"):
            raise ConfigurationError(f"give the study a NAME first, e.g. polyrl tune cartpole {name} ...")
        given = {
            "trials": trials, "steps": steps, "eval_every": eval_every, "eval_episodes": eval_episodes,
            "seeds": seeds, "objective": objective, "fresh_seeds": fresh_seeds, "sampler": sampler,
            "pruner": pruner,
            "startup_trials": startup_trials, "warmup_steps": warmup_steps, "study_seed": study_seed,
            "top": top,
        }  # fmt: skip
        settings = {key: value for key, value in given.items() if value is not None}
        base = _base_document(spec_file, algorithm, extra)
        space = None if space_file is None else read_document(space_file, "search space")
        lines = render.errors if as_json else render.console
        shown: list[str] = []

        def warn(text: str) -> None:
            shown.append(text.removeprefix("warning: "))
            render.complain(shown[-1], label="warning", style="yellow")

        try:
            report = polyrl.tune(
                name,
                base,
                space,
                backends=_backends(backend),
                out=out,
                storage=storage,
                resume=resume,
                workers=workers or 1,
                ray_address=ray_address,
                ray_connect_timeout=ray_connect_timeout or DEFAULT_CONNECT_TIMEOUT,
                report=lambda text: lines.print(text, soft_wrap=True, highlight=False, markup=False),
                warn=warn,
                **settings,
            )
        except KeyboardInterrupt:
            again = _resume_command(name, out, workers, ray_address)
            render.complain(f"the study stopped; continue it with: {again}", label="interrupted")
            return EXIT_INTERRUPTED
        if as_json:
            typer.echo(report.model_dump_json(indent=2))
        else:
            _print_report(report)
            for text in report.warnings:
                if text not in shown:  # the summary of the trials' iteration sizes, after the table
                    render.complain(text, label="warning", style="yellow")
        empty = [s.study for s in report.studies if s.best is None]
        if empty:
            render.complain(f"no trial of {', '.join(empty)} completed; see the failed trials above")
            return EXIT_NO_RESULT
        return 0

    code = guarded(body)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `polyrl tune` to the `polyrl` app."""
    app.registered_commands.extend(commands.registered_commands)
