"""The Callback base class users subclass, Keras style."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyrl.callbacks.context import PlayContext, RunContext, TrainContext
    from polyrl.experience.batch import TransitionBatch
    from polyrl.records import EpisodeRecord, IterationRecord, PlayResult, StepRecord, TrainResult


class Callback:
    """Subclass and override the hooks you need; no decorator is required.

    Each hook receives the run's `context` (statistics so far, the config, the stop flag, the
    learning rate) plus the hook's own argument. An override may leave out arguments it does
    not use, but must keep their names, e.g. `def on_iteration_end(self, record): ...`.
    Callbacks are called in the order they were passed; on_step_* hooks fire during play.
    """

    def on_train_begin(self, context: TrainContext) -> None:
        """Training starts."""

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        """Training ended."""

    def on_iteration_begin(self, context: TrainContext, iteration: int) -> None:
        """An iteration is about to run."""

    def on_experience(self, context: TrainContext, batch: TransitionBatch) -> None:
        """The transitions the last iteration collected (overriding this turns collection on)."""

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        """An iteration ran."""

    def on_play_begin(self, context: PlayContext) -> None:
        """play() or evaluate() starts."""

    def on_play_end(self, context: PlayContext, result: PlayResult) -> None:
        """play() or evaluate() ended."""

    def on_episode_begin(self, context: PlayContext, index: int) -> None:
        """A played episode starts."""

    def on_episode_end(self, context: PlayContext, episode: EpisodeRecord) -> None:
        """A played episode ended."""

    def on_step_begin(self, context: PlayContext, observation: Any) -> None:
        """A play step is about to act."""

    def on_step_end(self, context: PlayContext, step: StepRecord) -> None:
        """A play step was taken."""

    def on_api_call(
        self, context: RunContext | None, target: str, method: str, seconds: float, summary: str
    ) -> None:
        """The core called the backend driver or the env."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
