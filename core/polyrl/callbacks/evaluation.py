"""Evaluation: the training-and-evaluation schedule as a callback.

The core already evaluates on a schedule (TrainConfig.eval_every / eval_episodes /
eval_max_steps / eval_seed, the seed document's num_iterations_between_eval): deterministic play
in a fresh env built from the spec, separate from the backend's training envs, right after the
iteration and before any on_iteration_end, so every callback sees the numbers. This callback
switches that schedule on from a callback list and keeps the results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyrl.callbacks.base import Callback
from polyrl.config import PlayConfig
from polyrl.errors import ConfigurationError

if TYPE_CHECKING:
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import IterationRecord, PlayResult, TrainResult


class Evaluation(Callback):
    """Evaluate every `every` iterations with `episodes` deterministic episodes.

    The statistics land in each evaluated iteration's record under their own names
    (`eval_return_mean`, `eval_return_std`, `eval_return_min`, `eval_return_max`,
    `eval_length_mean`), in `context.evaluations`, in `TrainResult.evaluations` and in this
    callback's `results`. `seed` is the reset seed of the first evaluation episode (None: derived
    from the agent's seed, so every evaluation plays the same episodes); `max_steps` cuts long
    episodes. `final=True` also evaluates once after training ends (`final_result`).
    Overrides the TrainConfig's eval_* fields for the run.
    """

    def __init__(
        self,
        every: int = 1,
        episodes: int = 5,
        max_steps: int | None = None,
        seed: int | None = None,
        final: bool = False,
    ) -> None:
        for name, value, low in (("every", every, 1), ("episodes", episodes, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigurationError(f"Evaluation {name} must be an integer >= {low}, got {value!r}")
        self.every = every
        self.episodes = episodes
        self.max_steps = max_steps
        self.seed = seed
        self.final = final
        self.results: list[dict[str, float | int | None]] = []
        self.final_result: PlayResult | None = None

    def on_train_begin(self, context: TrainContext) -> None:
        config = context.config
        config.eval_every = self.every
        config.eval_episodes = self.episodes
        config.eval_max_steps = self.max_steps
        config.eval_seed = self.seed

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        if context.evaluations and context.evaluations[-1].get("iteration") == record.iteration:
            self.results.append(dict(context.evaluations[-1]))

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        if self.final:
            play = PlayConfig(
                episodes=self.episodes, max_steps=self.max_steps, seed=self.seed, deterministic=True
            )
            self.final_result = context.agent.play(play)

    def __repr__(self) -> str:
        return f"Evaluation(every={self.every}, episodes={self.episodes}, seed={self.seed})"
