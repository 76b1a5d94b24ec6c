"""The run contexts: what callbacks read and change during a train() or a play() call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

    from polyrl.agent import Agent
    from polyrl.config import PlayConfig, TrainConfig
    from polyrl.records import EpisodeRecord, IterationRecord
    from polyrl.run import Run


class RunContext:
    """The live state of one train() or play() call, shared by every callback.

    The base of `TrainContext` (training hooks) and `PlayContext` (play hooks):

    - `agent`: the Agent being trained or played (save it, read its counters).
    - `config`: the run's TrainConfig or PlayConfig; assignments are validated and take effect at
      the next check (e.g. raising `total_steps` extends the run).
    - `stop_training`: set True (or call `stop()`) to end after the current iteration or step.
    - `learning_rate`: read or set; setting it reaches the backend's optimizer immediately.
    - `history` (iteration records) / `episode_records` (played episodes): the records so far;
      `metrics`: the latest iteration record, flat.
    - `declared_metrics`: metric names callbacks promise to add to records (checked by monitors);
      `shared`: scratch space callbacks of one run use to coordinate.
    """

    phase: Literal["train", "play"]

    def __init__(self, run: Run, config: TrainConfig | PlayConfig) -> None:
        self._run = run
        self.agent: Agent = run.agent
        self.config = config
        self.history: list[IterationRecord] = []
        self.episode_records: list[EpisodeRecord] = []
        self.stop_training = False
        self.stop_reason: str | None = None
        self.evaluations: list[dict[str, float | int | None]] = []
        self.env: Any = None
        self.declared_metrics: set[str] = set()
        self.shared: dict[str, Any] = {}

    def stop(self, reason: str = "stopped by a callback") -> None:
        """Ask the run to end after the current iteration (training) or step (play)."""
        self.stop_training = True
        self.stop_reason = reason

    def render(self) -> np.ndarray | None:
        """A frame of the env being played (its `render()`), reported to on_api_call like other env calls."""
        if self.env is None:
            raise RuntimeError("render() works during play only, once the env exists (after on_play_begin)")
        frame: np.ndarray | None = self._run.timed("env", "render", self.env.render)
        return frame

    @property
    def learning_rate(self) -> float:
        """The learning rate the backend's optimizer uses now."""
        return self.agent.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.agent.learning_rate = value

    @property
    def iteration(self) -> int:
        """Iterations run over the agent's life."""
        return self.agent.iterations

    @property
    def env_steps(self) -> int:
        """Env steps collected over the agent's life."""
        return self.agent.env_steps

    @property
    def metrics(self) -> dict[str, float | int | None]:
        """The latest iteration's numbers by flat name (empty before the first)."""
        return self.history[-1].flat() if self.history else {}


class TrainContext(RunContext):
    """The context of a train() call; `config` is its TrainConfig."""

    phase: Literal["train", "play"] = "train"
    config: TrainConfig

    def __init__(self, run: Run, config: TrainConfig) -> None:
        super().__init__(run, config)


class PlayContext(RunContext):
    """The context of a play() or evaluate() call; `config` is its PlayConfig, `env` the env played."""

    phase: Literal["train", "play"] = "play"
    config: PlayConfig

    def __init__(self, run: Run, config: PlayConfig) -> None:
        super().__init__(run, config)
