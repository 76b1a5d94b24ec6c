"""SB3's SubprocVecEnv with polyrl's env errors raised in this process, typed.

SB3's worker process dies on any exception of its env, and the parent then sees only an
EOFError from the pipe. Built with `deliver_errors=True`, polyrl's env guard in the worker
instead ends the episode and puts its EnvStepError (or NonFiniteDataError) into the info dict,
which pickles to this process; here it is raised before SB3 reads the step. The worker stays
alive, so closing the env still works. Across the process boundary the env's own exception
cannot be chained: the error keeps its type name and text (`error_type`, `error_text`).
"""

from __future__ import annotations

import functools
from typing import Any

from polyrl.backend import EnvSource
from polyrl.env_guard import raise_delivered
from stable_baselines3.common.vec_env import SubprocVecEnv


def delivering_factory(env: EnvSource) -> Any:
    """The env factory for the workers: polyrl's guard hands errors back instead of raising."""
    return functools.partial(env.make, deliver_errors=True)


class GuardedSubprocVecEnv(SubprocVecEnv):
    """A SubprocVecEnv that raises the env errors its workers' guards delivered."""

    def step_wait(self) -> Any:
        """SubprocVecEnv.step_wait, then the first delivered error (a step's, else its auto-reset's)."""
        result = super().step_wait()
        raise_delivered(result[3])
        raise_delivered(self.reset_infos)
        return result

    def reset(self) -> Any:
        """SubprocVecEnv.reset, then the first delivered error."""
        observations = super().reset()
        raise_delivered(self.reset_infos)
        return observations
