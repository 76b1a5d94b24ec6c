"""Every polyrl extension point, as pluggy hook specifications.

Three families:
- `BackendSpecs`: implemented by plugin modules found through the "polyrl" entry-point group,
  to declare backends.
- `BenchmarkSpecs`: implemented by backend plugins for `polyrl bench` (optional).
- `LifecycleSpecs`: the Keras-style callback hooks. A `polyrl.Callback` subclass implements
  them by overriding methods (no decorator needed); an installed integration plugin implements
  them with `@polyrl.backend.hookimpl` and then sees every run without being passed as a callback.

An implementation may accept any subset of a hook's arguments, by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from polyrl.backend import BackendInfo
    from polyrl.callbacks.context import PlayContext, RunContext, TrainContext
    from polyrl.records import EpisodeRecord, IterationRecord, PlayResult, StepRecord, TrainResult
    from polyrl.spec import AgentSpec

PROJECT = "polyrl"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class BackendSpecs:
    """Hooks through which plugins declare backends."""

    @hookspec
    def polyrl_backends(self) -> list[BackendInfo]:
        """Return the backends this plugin provides (import no heavy library here)."""
        raise NotImplementedError


class BenchmarkSpecs:
    """Hooks `polyrl bench` uses to compare polyrl with the native library called directly."""

    @hookspec(firstresult=True)
    def polyrl_direct_training(self, spec: AgentSpec, total_steps: int) -> float | None:
        """Train `spec` for `total_steps` env steps with the native library alone; return the seconds.

        The seconds cover building the native objects from the same mapped configuration polyrl
        uses and the library's own training loop. Return None for a spec of another backend.
        Import the library inside the function, never at module import.
        """
        raise NotImplementedError


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
