"""TrainConfig and PlayConfig: the schedule of a run, readable and changeable by callbacks."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from polyrl._model import SpecModel
from polyrl.spec import Seed

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class TrainConfig(SpecModel):
    """How long to train and how often to evaluate.

    Training stops at the first of: `total_steps` env steps collected by this call (the last
    iteration may overshoot by less than one iteration), `iterations` iterations, `time_limit`
    seconds, or a callback's stop request. At least one of the three limits is required.
    Callbacks may change these fields while the run goes on (assignments are validated).
    """

    total_steps: PositiveInt | None = None
    """Env steps to collect in this call."""
    iterations: PositiveInt | None = None
    """Training iterations to run in this call."""
    time_limit: Annotated[float, Field(gt=0)] | None = None
    """Seconds to train."""
    eval_every: NonNegativeInt = Field(
        default=0, description="Evaluate every N iterations with deterministic play; 0 = never."
    )
    eval_episodes: PositiveInt = 5
    """Episodes per evaluation."""
    eval_max_steps: PositiveInt | None = None
    """Cut evaluation episodes after this many steps."""
    eval_seed: Seed | None = Field(
        default=None,
        description="Reset seed of the first evaluation episode (episode i uses seed+i); None: derived "
        "from the agent's seed, so every evaluation plays the same episodes.",
    )

    @model_validator(mode="after")
    def _needs_a_limit(self) -> TrainConfig:
        if self.total_steps is None and self.iterations is None and self.time_limit is None:
            raise ValueError(
                "give at least one of total_steps, iterations or time_limit, "
                "e.g. TrainConfig(total_steps=50_000)"
            )
        return self


class PlayConfig(SpecModel):
    """How to play: number of episodes, step cap, deterministic or sampled actions, rendering."""

    episodes: PositiveInt = 1
    """Episodes to play."""
    max_steps: PositiveInt | None = Field(
        default=None, description="Cut an episode after this many steps (counted as truncated)."
    )
    deterministic: bool = True
    """Greedy actions (True) or sampled ones."""
    seed: Seed | None = Field(
        default=None,
        description="Seed of the first episode's reset (episode i uses seed+i); "
        "None: derived from the agent's seed, random if it has none.",
    )
    render_mode: Literal["rgb_array", "human"] | None = None
    """Render the env: 'human' opens a window, 'rgb_array' gives frames."""
    record: str | None = Field(
        default=None,
        description="Write the played transitions to this .npz file or Minari dataset directory "
        "(refused if it exists); see docs/experience.md.",
        min_length=1,
    )

    @field_validator("record", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value
