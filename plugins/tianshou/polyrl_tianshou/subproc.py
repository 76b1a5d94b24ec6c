"""The driver's vectorised env; Tianshou's SubprocVectorEnv with polyrl's env errors raised here, typed.

Tianshou's worker process ends on any exception of its env, and the parent then sees only a
pipe error. Built with `deliver_errors=True`, polyrl's env guard in the worker instead ends the
episode and puts its EnvStepError (or NonFiniteDataError) into the info dict, which pickles to
this process; here it is raised before the collector reads the step. Across the process
boundary the env's own exception cannot be chained: the error keeps its type name and text
(`error_type`, `error_text`).
"""

from __future__ import annotations

import functools
from typing import Any

from polyrl.backend import EnvSource
from polyrl.env_guard import raise_delivered
from tianshou.env import DummyVectorEnv, SubprocVectorEnv


def delivering_factory(env: EnvSource) -> Any:
    """The env factory for the workers: polyrl's guard hands errors back instead of raising."""
    return functools.partial(env.make, deliver_errors=True)


class GuardedSubprocVectorEnv(SubprocVectorEnv):
    """A SubprocVectorEnv that raises the env errors its workers' guards delivered."""

    def step(self, action: Any, id: Any = None) -> Any:
        """SubprocVectorEnv.step, then the first delivered error."""
        result = super().step(action, id)
        raise_delivered(result[4])
        return result

    def reset(self, env_id: Any = None, **kwargs: Any) -> Any:
        """SubprocVectorEnv.reset, then the first delivered error."""
        observations, infos = super().reset(env_id, **kwargs)
        raise_delivered(infos)
        return observations, infos


def vector_env(kind: str, n_envs: int, env: EnvSource) -> Any:
    """`n_envs` copies of the env, stepped in this process ("dummy") or one process each ("subproc")."""
    if kind == "subproc":
        # Tianshou's workers end on an env exception: their guards hand polyrl's errors back instead.
        return GuardedSubprocVectorEnv([delivering_factory(env) for _ in range(n_envs)])
    return DummyVectorEnv([env.make for _ in range(n_envs)])
