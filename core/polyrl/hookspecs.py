"""Every polyrl extension point, as pluggy hook specifications.

Three families:
- `BackendSpecs`: implemented by plugin modules found through the "polyrl" entry-point group,
  to declare backends.
- `PluginSpecs`: how a plugin extends polyrl itself: hooks of its own (pytest's
  `pytest_addhooks`) and commands of the `polyrl` CLI (llm's `register_commands`). The
  conformance plugin uses both: it adds `polyrl conformance` and `polyrl bench`, and the hooks
  backends implement for the benchmark (polyrl_conformance/bench/hookspecs.py).
- `LifecycleSpecs`: the Keras-style callback hooks. A `polyrl.Callback` subclass implements
  them by overriding methods (no decorator needed); an installed integration plugin implements
  them with `@polyrl.backend.hookimpl` and then sees every run without being passed as a callback.

An implementation may accept any subset of a hook's arguments, by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from polyrl.backend import BackendInfo
    from polyrl.callbacks.context import PlayContext, RunContext, TrainContext
    from polyrl.experience.batch import TransitionBatch
    from polyrl.records import EpisodeRecord, IterationRecord, PlayResult, StepRecord, TrainResult

PROJECT = "polyrl"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class BackendSpecs:
    """Hooks through which plugins declare backends."""

    @hookspec
    def polyrl_backends(self) -> list[BackendInfo]:
        """Return the backends this plugin provides (import no heavy library here)."""
        raise NotImplementedError


class PluginSpecs:
    """Hooks through which a plugin adds hooks of its own and commands to the `polyrl` CLI."""

    @hookspec(historic=True)
    def polyrl_addhooks(self, pluginmanager: pluggy.PluginManager) -> None:
        """Add this plugin's own hookspecs: `pluginmanager.add_hookspecs(MySpecs)`.

        Called when the plugin is registered (a historic hook), before the other plugins: plugins
        declaring hooks register first, so the registry checks every other plugin's hookimpls
        against them, and a misspelt implementation of one fails its plugin like any other.
        """

    @hookspec
    def polyrl_register_commands(self, cli: typer.Typer) -> None:
        """Add commands to the `polyrl` command line: `cli.command(name="mycommand")(function)`.

        Called once when the app is built, before the command line is parsed; define the command
        functions at module level, import heavy libraries inside them, and wrap their bodies in
        `polyrl.cli.guard.guarded` to report user errors as the built-in commands do.
        """


class LifecycleSpecs:
    """The callback hooks, called by the core around training and play."""

    @hookspec
    def on_train_begin(self, context: TrainContext) -> None:
        """Training starts; `context.config` is the TrainConfig and may be changed."""

    @hookspec
    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        """Training ended (limit reached, stop requested, or a callback failed)."""

    @hookspec
    def on_iteration_begin(self, context: TrainContext, iteration: int) -> None:
        """An iteration (numbered over the agent's life, from 1) is about to run."""

    @hookspec
    def on_experience(self, context: TrainContext, batch: TransitionBatch) -> None:
        """The transitions the last iteration collected, in step order (before on_iteration_end).

        Implementing it turns collection on: the algorithm must declare "experience.collect".
        """

    @hookspec
    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        """An iteration ran; set `context.stop_training = True` to end training here."""

    @hookspec
    def on_play_begin(self, context: PlayContext) -> None:
        """play() or evaluate() starts; `context.config` is the PlayConfig."""

    @hookspec
    def on_play_end(self, context: PlayContext, result: PlayResult) -> None:
        """play() or evaluate() ended."""

    @hookspec
    def on_episode_begin(self, context: PlayContext, index: int) -> None:
        """An episode of play (numbered from 0 within the call) starts."""

    @hookspec
    def on_episode_end(self, context: PlayContext, episode: EpisodeRecord) -> None:
        """An episode of play ended."""

    @hookspec
    def on_step_begin(self, context: PlayContext, observation: Any) -> None:
        """A play step is about to act on `observation`."""

    @hookspec
    def on_step_end(self, context: PlayContext, step: StepRecord) -> None:
        """A play step was taken."""

    @hookspec
    def on_api_call(
        self, context: RunContext | None, target: str, method: str, seconds: float, summary: str
    ) -> None:
        """The core called `target.method` (target "driver" or "env") taking `seconds`."""


LIFECYCLE_HOOKS = tuple(name for name in vars(LifecycleSpecs) if name.startswith("on_"))
