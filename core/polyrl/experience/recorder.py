"""ExperienceRecorder: the transitions a train() call collects, written as one dataset.

A callback like the others: it implements `on_experience`, which turns the driver's collection
on for the run (the algorithm must declare "experience.collect"), keeps each iteration's batch,
and writes them all with `write_experience` when training ends, the agent's env id recorded in
the dataset. The dataset is what `Agent.add_experience`, a spec's `prefill` and `polyrl play`'s
readers take back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from polyrl.callbacks.base import Callback
from polyrl.experience.batch import TransitionBatch

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.callbacks.context import TrainContext
    from polyrl.records import TrainResult


class ExperienceRecorder(Callback):
    """Record every transition training collects into `target`, written when train() ends.

    `target` is where `polyrl.experience.write_experience` writes: a ".npz" file, or a Minari
    dataset directory (any other name). An existing target is refused when training starts (before any
    iteration) unless `overwrite`, also the one this recorder wrote in an earlier train() call:
    reuse a recorder with `overwrite=True` (each call replaces the dataset) or give each train()
    call a recorder with a new target. With `every_iteration`, the dataset is rewritten after each
    iteration with everything so far, so a run that fails or is killed leaves its transitions
    on disk (costs a write per iteration). After training, `path` is what was written (None
    when no iteration ran) and `rows` how many transitions it holds.

    >>> agent.train(total_steps=5_000, callbacks=[ExperienceRecorder("runs/cartpole.npz")])
    """

    def __init__(
        self, target: str | os.PathLike[str], *, overwrite: bool = False, every_iteration: bool = False
    ) -> None:
        self.target = target
        self.overwrite = overwrite
        self.every_iteration = every_iteration
        self.batches: list[TransitionBatch] = []
        self.path: Path | None = None
        self._agent: Agent | None = None

    @property
    def rows(self) -> int:
        """Transitions recorded in this train() call so far."""
        return sum(len(batch) for batch in self.batches)

    def on_train_begin(self, context: TrainContext) -> None:
        """Forget the last call's batches; refuse a target that exists (unless `overwrite`)."""
        from polyrl.experience.datasets import check_target

        self.batches, self.path = [], None
        self._agent = context.agent
        check_target(
            os.fspath(self.target),
            self.overwrite,
            advice="pass overwrite=True to ExperienceRecorder, or a new target per train() call",
        )

    def on_experience(self, context: TrainContext, batch: TransitionBatch) -> None:
        """Keep the iteration's batch (and rewrite the dataset with `every_iteration`)."""
        self.batches.append(batch)
        if self.every_iteration:
            self._write()

    def on_train_end(self, context: TrainContext, result: TrainResult) -> None:
        """Write the batches of this train() call as one dataset."""
        if not self.every_iteration:
            self._write()

    def _write(self) -> None:
        if not self.batches or self._agent is None:
            return
        from polyrl.experience.datasets import write_experience

        agent = self._agent
        # After the first write of this call the file is the recorder's own: rewriting it is fine.
        self.path = write_experience(
            TransitionBatch.concatenate(self.batches),
            os.fspath(self.target),
            env_id=agent.env_source.gym_id,  # a factory's env is no Gymnasium id: not recorded
            overwrite=self.overwrite or self.path is not None,
            observation_space=agent.observation_space,
            action_space=agent.action_space,
        )

    def __repr__(self) -> str:
        return f"ExperienceRecorder({os.fspath(self.target)!r})"


__all__ = ["ExperienceRecorder"]
