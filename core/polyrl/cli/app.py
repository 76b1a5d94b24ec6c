"""The `polyrl` command: typer commands over the same Agent API and pydantic models as Python."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polyrl.cli import render
from polyrl.cli.fields import FieldFlagsCommand
from polyrl.cli.guard import EXIT_USAGE, DebugMode, guarded
from polyrl.cli.overrides import merge, normalize_flag, parse_flags, read_document, route
from polyrl.config import PlayConfig, TrainConfig
from polyrl.errors import PluginLoadWarning
from polyrl.presets import PresetChoice
from polyrl.spec import AgentSpec

if TYPE_CHECKING:
    from polyrl.plugins import PluginRegistry

__all__ = ["EXIT_THRESHOLD", "EXIT_USAGE", "app", "build_app", "build_documents", "main"]

EXIT_THRESHOLD = 1


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="polyrl",
        help="Train, play, evaluate and inspect RL agents on any installed backend.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # One flag style in help (--eval-episodes), both accepted: --eval_episodes finds it too.
        context_settings={"token_normalize_func": normalize_flag},
    )


# The core's own commands. `build_app` copies them into every app it builds, then lets the
# plugins add theirs, so an app built for another registry (a test's) has them too.
_builtin = _new_app()


def _version(value: bool) -> None:
    if value:
        from polyrl.versions import polyrl_version

        typer.echo(f"polyrl {polyrl_version()}")
        raise typer.Exit()


@_builtin.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of short errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    DebugMode.enabled = debug


def build_documents(
    spec_file: Path | None, config_file: Path | None, named: dict[str, Any], extra: list[str]
) -> tuple[AgentSpec, TrainConfig]:
    """The spec and train config from files, then named flags, then `--field value` flags."""
    flags = route(parse_flags(extra), {"spec": AgentSpec, "config": TrainConfig})
    spec_doc = merge(
        read_document(spec_file, "spec"),
        {k: v for k, v in named.items() if k in AgentSpec.model_fields and v is not None},
    )
    config_doc = merge(
        read_document(config_file, "train config"),
        {k: v for k, v in named.items() if k in TrainConfig.model_fields and v is not None},
    )
    spec = AgentSpec.model_validate(merge(spec_doc, flags["spec"]))
    config = TrainConfig.model_validate(merge(config_doc, flags["config"]))
    return spec, config


def preset_banner(choice: PresetChoice | None) -> str:
    """The banner line naming the preset a run uses, or saying none applied."""
    if choice is None:
        return "preset: none (the library's defaults for every field left unset)"
    why = {
        "fallback": "the fallback for envs of these observation/action kinds; ",
        "version": "the preset of another version of this env; ",
    }.get(choice.matched_by or "", "")
    return (
        f"preset: {choice.name} ({why}{choice.source}) fills the fields you left unset; "
        "--preset none for the library's defaults"
    )


def _default_out(spec: AgentSpec) -> Path:
    env = spec.env if isinstance(spec.env, str) else spec.env.factory.rpartition(":")[2]
    seed = "" if spec.seed is None else f"_s{spec.seed}"
    return Path("runs") / f"{env}_{spec.backend}_{spec.algorithm}{seed}"


@_builtin.command(
    cls=FieldFlagsCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="Train an agent, save it to --out, then evaluate it. Every AgentSpec and TrainConfig field "
    "is also a flag (listed below): --gamma 0.98, --network.hidden 64,64, --ppo.n-epochs 4.",
)
def train(
    ctx: typer.Context,
    backend: Annotated[str | None, typer.Option(help="Backend name (see `polyrl plugins`).")] = None,
    algorithm: Annotated[
        str | None, typer.Option("--algo", "--algorithm", help="Algorithm, e.g. ppo.")
    ] = None,
    env: Annotated[str | None, typer.Option(help="Gymnasium id, e.g. CartPole-v1.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of envs, weights and sampling.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", "--total-steps", help="Env steps to train.")] = None,
    iterations: Annotated[int | None, typer.Option(help="Iterations to train.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Seconds to train.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Checkpoint directory (default runs/ENV_BACKEND_ALGO_sSEED).")
    ] = None,
    eval_episodes: Annotated[int, typer.Option(help="Deterministic episodes after training (0: none).")] = 10,
    require_return: Annotated[
        float | None, typer.Option(help="Exit with status 1 if the evaluation's mean return is below this.")
    ] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="AgentSpec JSON file; flags override it.")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TrainConfig JSON file; flags override it.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (checkpoint, result, evaluation), no tables."),
    ] = False,
) -> None:
    def body() -> float | None:
        import polyrl
        from polyrl.experiments.plan import write_json

        named = {
            "backend": backend,
            "algorithm": algorithm,
            "env": env,
            "seed": seed,
            "total_steps": steps,
            "iterations": iterations,
            "time_limit": time_limit,
        }
        if eval_episodes > 0:
            named["eval_episodes"] = eval_episodes
        spec, config = build_documents(spec_file, config_file, named, list(ctx.args))
        target = out or _default_out(spec)
        env_name = spec.env if isinstance(spec.env, str) else spec.env.factory
        # The agent is built (backend, algorithm, env and spaces checked) before anything is printed.
        with polyrl.Agent(spec) as agent:
            if not as_json:
                render.say(f"training {spec.backend}/{spec.algorithm} on {env_name} -> {target}")
                render.say(preset_banner(agent.preset))
            callbacks = [] if as_json else [render.progress_callback()]
            try:
                result = agent.train(config, callbacks=callbacks)
            except KeyboardInterrupt:
                agent.save(target, metadata={"interrupted": True})
                render.complain(f"saved what was learned to {target}", label="interrupted")
                raise typer.Exit(130) from None
            except polyrl.errors.CallbackError as exc:
                agent.save(target, metadata={"stopped_by_error": str(exc)})
                render.complain(f"the run failed in a callback; saved what was learned to {target}")
                raise
            metadata: dict[str, Any] = {
                "stop_reason": result.stop_reason,
                "run_env_steps": result.run_env_steps,
            }
            evaluation = (
                agent.evaluate(episodes=eval_episodes, max_steps=config.eval_max_steps)
                if eval_episodes > 0
                else None
            )
            if evaluation is not None:
                metadata["eval_return_mean"] = evaluation.return_mean
            agent.save(target, metadata=metadata)
        write_json(target / "train_config.json", config.model_dump(mode="json"))
        write_json(target / "train_result.json", result.model_dump(mode="json"))
        if evaluation is not None:
            write_json(target / "evaluation.json", evaluation.model_dump(mode="json"))
        if as_json:
            summary = {
                "checkpoint": str(target),
                "preset": None if agent.preset is None else agent.preset.model_dump(mode="json"),
                "result": result.model_dump(mode="json", exclude={"records"}),
                "evaluation": None if evaluation is None else evaluation.model_dump(mode="json"),
            }
            typer.echo(json.dumps(summary, indent=2))
            return None if evaluation is None else evaluation.return_mean
        render.titled("training", render.train_summary(result))
        if evaluation is None:
            return None
        render.titled(f"evaluation after training ({eval_episodes} episodes)", render.play_table(evaluation))
        render.say(f"saved to {target}  (polyrl play {target})")
        return evaluation.return_mean

    mean = guarded(body)
    if require_return is not None and (mean is None or mean < require_return):
        render.complain(f"evaluation return mean {mean} < required {require_return}", label="below threshold")
        raise typer.Exit(EXIT_THRESHOLD)


def _play(
    path: Path,
    config: PlayConfig,
    title: str,
    record: Path | None,
    as_json: bool,
    trust: bool,
    device: str | None = None,
) -> None:
    import polyrl

    def body() -> None:
        from polyrl.cli.recording import recorded_play

        with polyrl.Agent.load(path, trust_env_factory=trust, device=device) as agent:
            movies: list[Path] = []
            if record is None:
                result = agent.play(config)
            else:
                result, movies = recorded_play(agent, config, record)
        if as_json:
            document = result.model_dump(mode="json")
            typer.echo(json.dumps({**document, "movies": [str(m) for m in movies]}, indent=2))
            return
        render.titled(title, render.play_table(result))
        for movie in movies:
            render.say(f"wrote {movie}")

    guarded(body)


RecordOption = Annotated[
    Path | None,
    typer.Option(
        help="Film the episodes into this .gif or .mp4 file (one episode: exactly this file; more: "
        "FILE-episode-N.gif). Works without a display.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the PlayResult as JSON, no table.")]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-env-factory",
        help="Import and call the env factory the checkpoint names (runs code from the checkpoint: "
        "only for checkpoints you trust; see docs/security.md).",
    ),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(help="Load onto this device instead of the saved spec's (cpu, cuda, cuda:N, auto)."),
]


@_builtin.command(help="Play episodes with a saved agent and print each episode's return and length.")
def play(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    episodes: Annotated[int, typer.Option(help="Episodes to play.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Cut episodes after this many steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first episode.")] = None,
    stochastic: Annotated[bool, typer.Option(help="Sample actions instead of the greedy ones.")] = False,
    render_human: Annotated[
        bool, typer.Option("--render", help="Show the env in a window (needs a display; see --record).")
    ] = False,
    record: RecordOption = None,
    as_json: JsonOption = False,
    trust_env_factory: TrustOption = False,
    device: DeviceOption = None,
) -> None:
    def config() -> PlayConfig:
        return PlayConfig(
            episodes=episodes,
            max_steps=max_steps,
            seed=seed,
            deterministic=not stochastic,
            render_mode="human" if render_human else None,
        )

    actions = "stochastic" if stochastic else "deterministic"
    title = f"play of {path}: {episodes} episode(s), {actions} actions"
    _play(path, guarded(config), title, record, as_json, trust_env_factory, device)


@_builtin.command(help="Deterministic evaluation of a saved agent: mean, spread and every episode's return.")
def evaluate(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    episodes: Annotated[int, typer.Option(help="Episodes to play.")] = 10,
    max_steps: Annotated[int | None, typer.Option(help="Cut episodes after this many steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first episode.")] = None,
    record: RecordOption = None,
    as_json: JsonOption = False,
    trust_env_factory: TrustOption = False,
    device: DeviceOption = None,
) -> None:
    def config() -> PlayConfig:
        return PlayConfig(episodes=episodes, max_steps=max_steps, seed=seed, deterministic=True)

    title = f"evaluation of {path}: {episodes} deterministic episode(s)"
    _play(path, guarded(config), title, record, as_json, trust_env_factory, device)


@_builtin.command(help="Show what a checkpoint holds: backend, versions, spec, counters, files.")
def show(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    from polyrl.checkpoint import read_manifest

    def body() -> None:
        manifest = read_manifest(path)
        if as_json:
            typer.echo(manifest.model_dump_json(indent=2))
            return
        render.titled(f"checkpoint {path}", render.manifest_table(manifest))
        render.say("")
        render.say("spec (the fields set differently from AgentSpec's defaults; --json shows everything):")
        render.console.print_json(manifest.spec.model_dump_json(exclude_defaults=True))

    guarded(body)


@_builtin.command(
    help="List backends: algorithms, install state and library versions, and plugins that failed "
    "to load (imports no backend)."
)
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    from polyrl.plugins import is_installed, library_version, registry

    def body() -> None:
        # The problems are listed below: no warning text as well (import failures already warned
        # when the app was built, since the plugins' commands had to be known first).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginLoadWarning)
            backends = sorted(registry().backends().items())
            problems = registry().problems()
        rows: list[dict[str, Any]] = []
        for name, info in backends:
            rows.append(
                {
                    "name": name,
                    "description": info.description,
                    "library": info.library,
                    "installed": is_installed(info),
                    "version": library_version(info),
                    "install": info.install_hint,
                    "plugin": registry().source(name),
                    "algorithms": {a: algo.action_spaces for a, algo in sorted(info.algorithms.items())},
                    "observations": {
                        a: algo.observation_spaces for a, algo in sorted(info.algorithms.items())
                    },
                }
            )
        for problem in problems:  # an entry point that failed (or registered nothing): never silent
            rows.append(
                {
                    "name": problem.name,
                    "description": None,
                    "library": None,
                    "installed": False,
                    "version": None,
                    "install": None,
                    "plugin": problem.name,
                    "algorithms": {},
                    "observations": {},
                    "status": problem.status,
                    "error": problem.error,
                    "message": problem.describe(),
                    "entry_point": problem.entry_point,
                    "distribution": problem.distribution,
                }
            )
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        render.titled("polyrl backends", render.plugins_table(rows))
        for problem in problems:
            render.complain(problem.describe(), label="plugin failed to load")

    guarded(body)


def _register_experiment_commands() -> None:
    from polyrl.cli.experiments import register
    from polyrl.cli.presets import register as register_presets
    from polyrl.cli.record import register as register_record
    from polyrl.cli.tune import register as register_tune

    register(_builtin)
    register_tune(_builtin)
    register_presets(_builtin)
    register_record(_builtin)


_register_experiment_commands()


def build_app(plugin_registry: PluginRegistry | None = None) -> typer.Typer:
    """The `polyrl` app: the core's commands, then those the plugins add (`polyrl_register_commands`).

    `plugin_registry` defaults to the process-wide registry of installed plugins (a test passes
    its own). Like llm's `register_commands(cli)`, each plugin receives the app and adds to it.
    """
    from polyrl.plugins import registry

    cli = _new_app()
    cli.registered_callback = _builtin.registered_callback
    cli.registered_commands = list(_builtin.registered_commands)
    cli.registered_groups = list(_builtin.registered_groups)
    hook = (plugin_registry or registry()).manager.hook.polyrl_register_commands
    # One plugin at a time, in pluggy's call order: a plugin failing here is reported and the
    # others' commands (and the core's) still work, instead of no `polyrl` command at all.
    for impl in reversed(hook.get_hookimpls()):
        try:
            impl.function(*[cli for _ in impl.argnames])  # the hook's one argument, if taken
        except Exception as exc:
            warnings.warn(
                f"polyrl plugin problem: plugin {impl.plugin_name!r} failed in its polyrl_register_commands "
                f"hook: {type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )
    return cli


app = build_app()


def main() -> None:
    """Entry point of the `polyrl` console script."""
    app(prog_name="polyrl")


if __name__ == "__main__":
    main()
