"""EnvGuard: the wrapper every env built by `EnvSource.make` gets; typed errors for a failing env.

One guard for all backends, because all of them build their envs through `EnvSource.make`:

- an exception of the env's reset()/step() becomes `EnvStepError` naming the env, where, the
  step within the episode and the original error (chained);
- a NaN or infinite reward, or float observation, becomes `NonFiniteDataError` (unless the
  spec's `check_finite` is off): raised while experience is collected, before any update can
  use it, so the agent keeps its last finite parameters.

The check runs on every step, so it is built once per observation space and kept cheap: integer,
boolean and image (uint8) leaves are skipped, a small float vector is summed in Python (NaN and
infinity propagate through a sum), a larger one with one NumPy reduction; only a non-finite sum
is checked element by element (a sum can overflow to infinity on finite values).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from polyrl.errors import EnvStepError, NonFiniteDataError, PolyrlError

#: The info key under which a guard built with `deliver_errors=True` hands its error to the parent
#: process (see `raise_delivered`).
ERROR_INFO_KEY = "polyrl_env_error"

#: Float vectors up to this size are checked with a Python sum of `tolist()`: for a CartPole-sized
#: observation that is about 5x faster than a NumPy reduction, whose fixed cost dominates.
_SMALL_VECTOR = 32
_SHOWN_VALUES = 3
_isfinite = math.isfinite  # a global name: a little faster per step than the attribute lookup

LeafPath = tuple[str | int, ...]  # keys and indices from the observation to a leaf
ObservationCheck = Callable[[Any], bool]


def _exactly_finite(value: Any) -> bool:
    """Every element finite (no overflow false alarms); non-numbers are not this check's business."""
    try:
        return bool(np.isfinite(np.asarray(value, dtype=np.float64)).all())
    except (TypeError, ValueError):
        return True


def _small_vector_finite(value: Any) -> bool:
    try:
        if _isfinite(sum(value.tolist(), 0.0)):  # a float start takes sum()'s fast float path
            return True
    except (AttributeError, TypeError):  # not a 1-D array after all: the exact test decides
        pass
    return _exactly_finite(value)


def _array_finite(value: Any) -> bool:
    # Finite values whose sum overflows make NumPy warn (once per place); the exact test then
    # clears them. Not silenced: np.errstate would double the cost of every step.
    try:
        if _isfinite(np.add.reduce(value, axis=None)):
            return True
    except (TypeError, ValueError):
        pass
    return _exactly_finite(value)


def _float_leaves(space: Any, path: LeafPath = ()) -> list[tuple[LeafPath, spaces.Box]]:
    """The Box leaves of float dtype (the only ones that can hold NaN), with their paths."""
    if isinstance(space, spaces.Box):
        return [(path, space)] if np.issubdtype(space.dtype, np.floating) else []
    if isinstance(space, spaces.Dict):
        return [leaf for key, sub in space.spaces.items() for leaf in _float_leaves(sub, (*path, key))]
    if isinstance(space, spaces.Tuple):
        return [leaf for index, sub in enumerate(space.spaces) for leaf in _float_leaves(sub, (*path, index))]
    return []  # Discrete, MultiDiscrete, MultiBinary: integers; Graph, Sequence, Text: not checked


def _leaf_check(box: spaces.Box) -> ObservationCheck:
    if len(box.shape) == 1 and box.shape[0] <= _SMALL_VECTOR:
        return _small_vector_finite
    return _array_finite


def observation_check(space: Any) -> ObservationCheck | None:
    """A cheap test "every float leaf of this observation is finite"; None when `space` has none."""
    leaves = _float_leaves(space)
    if not leaves:
        return None
    if len(leaves) == 1 and leaves[0][0] == ():
        return _leaf_check(leaves[0][1])
    checks = [(path, _leaf_check(box)) for path, box in leaves]

    def check(observation: Any) -> bool:
        for path, finite in checks:
            value = observation
            for key in path:  # inline, not _leaf(): this runs on every step
                value = value[key]
            if not finite(value):
                return False
        return True

    return check


def _leaf(observation: Any, path: LeafPath) -> Any:
    for key in path:
        observation = observation[key]
    return observation


def _values_text(value: Any) -> str:
    """The first few non-finite values of an array with their indices, e.g. "nan at index (2,)"."""
    array = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(array)
    if array.ndim == 0:
        return str(float(array))
    where = np.argwhere(bad)
    shown = ", ".join(f"{array[tuple(i)]} at index {tuple(int(x) for x in i)}" for i in where[:_SHOWN_VALUES])
    more = len(where) - _SHOWN_VALUES
    return shown + (f" (and {more} more of {array.size})" if more > 0 else f" (of {array.size} values)")


def non_finite_leaves(observation: Any, space: Any) -> list[tuple[LeafPath, str]]:
    """The float leaves of `observation` holding NaN or infinity, with their offending values."""
    found: list[tuple[LeafPath, str]] = []
    for path, _ in _float_leaves(space):
        try:
            value = _leaf(observation, path)
        except (KeyError, IndexError, TypeError):
            continue
        if not _exactly_finite(value):
            found.append((path, _values_text(value)))
    return found


_ADVICE = (
    "Non-finite data would poison the model, so polyrl stopped before any update used it: the "
    "agent keeps its last finite parameters and can be saved. Fix the env, or wrap it to sanitise "
    "its output (e.g. gymnasium.wrappers.TransformReward / TransformObservation with "
    "numpy.nan_to_num, or numpy.clip); if the values are meant (e.g. masked observations), turn "
    "this check off with check_finite=False in the spec (CLI: --check-finite false)."
)


def _position(where: str, step: int, episode: int) -> str:
    return f"in {where}() at step {step} of episode {episode}"


def raised_error(env: str, where: str, step: int, episode: int, error: BaseException) -> EnvStepError:
    """The EnvStepError for an exception the env raised (the caller chains `error`)."""
    error_type, error_text = type(error).__name__, str(error)
    return EnvStepError(
        f"the environment {env!r} raised {_position(where, step, episode)}: {error_type}: {error_text}. "
        "Nothing was learned from this step: the agent keeps its parameters and can be saved.",
        env=env, where=where, step=step, episode=episode, error_type=error_type, error_text=error_text,
    )  # fmt: skip


def _key_text(path: LeafPath) -> str:
    return "".join(f"[{key!r}]" for key in path)


def non_finite_observation_error(
    env: str, where: str, step: int, episode: int, observation: Any, space: Any
) -> NonFiniteDataError:
    """The NonFiniteDataError for an observation with NaN or infinity, naming the leaves and values."""
    found = non_finite_leaves(observation, space) or [((), _values_text(observation))]
    parts = "; ".join(f"observation{_key_text(path)}: {values}" for path, values in found)
    path, values = found[0]
    return NonFiniteDataError(
        f"the environment {env!r} returned a non-finite observation {_position(where, step, episode)}: "
        f"{parts}. {_ADVICE}",
        what="observation", key=".".join(map(str, path)) or None, values=values,
        env=env, where=where, step=step, episode=episode,
    )  # fmt: skip


def non_finite_reward_error(env: str, step: int, episode: int, reward: Any) -> NonFiniteDataError:
    """The NonFiniteDataError for a NaN or infinite reward."""
    return NonFiniteDataError(
        f"the environment {env!r} returned a non-finite reward {_position('step', step, episode)}: "
        f"{reward}. {_ADVICE}",
        what="reward", values=str(reward), env=env, where="step", step=step, episode=episode,
    )  # fmt: skip


class EnvGuard(gym.Wrapper[Any, Any, Any, Any]):
    """Turns exceptions and non-finite data of an env's reset()/step() into typed polyrl errors.

    `check_finite=False` keeps only the exception wrapping. `on_error` is called with each error
    before it is raised (RLlib's driver records it where a dying env runner cannot lose it).
    `deliver_errors=True` is for envs in a worker process whose host kills the worker on an
    exception (SB3's SubprocVecEnv, Tianshou's SubprocVectorEnv): the guard then returns an
    episode-ending placeholder with the error in `info[ERROR_INFO_KEY]`, which the parent raises
    with `raise_delivered`.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        name: str,
        *,
        check_finite: bool = True,
        on_error: Callable[[EnvStepError], None] | None = None,
        deliver_errors: bool = False,
    ) -> None:
        super().__init__(env)
        self.polyrl_env_name = name
        self._check_finite = check_finite
        # Decided once per space, so a step pays only for the leaves that can hold NaN.
        self._observation_finite = observation_check(env.observation_space) if check_finite else None
        self._on_error = on_error
        self._deliver = deliver_errors
        self._episode = 0
        self._step = 0

    def reset(self, **kwargs: Any) -> Any:
        """The env's reset(), guarded."""
        self._episode += 1
        self._step = 0
        try:
            # Only the keywords given (seed, options): an env whose reset takes no options still works.
            result = self.env.reset(**kwargs)
        except PolyrlError:
            raise
        except Exception as exc:
            error = self._report(raised_error(self.polyrl_env_name, "reset", 0, self._episode, exc))
            if self._deliver:
                return self._placeholder_observation(), {ERROR_INFO_KEY: error}
            raise error from exc
        finite = self._observation_finite
        if finite is not None and not finite(result[0]):
            error = self._report(self._observation_error("reset", result[0]))
            if self._deliver:
                return result[0], {ERROR_INFO_KEY: error}
            raise error
        return result

    def step(self, action: Any) -> Any:
        """The env's step(), guarded."""
        self._step += 1
        try:
            result = self.env.step(action)
        except PolyrlError:
            raise
        except Exception as exc:
            error = self._report(raised_error(self.polyrl_env_name, "step", self._step, self._episode, exc))
            if self._deliver:
                return self._placeholder_observation(), 0.0, True, False, {ERROR_INFO_KEY: error}
            raise error from exc
        if self._check_finite:
            # Inline, not a helper call: this runs on every step of every env.
            try:
                reward_finite = _isfinite(result[1])
            except (TypeError, ValueError):  # not a number: Gymnasium's checker's business
                reward_finite = True
            finite = self._observation_finite
            if not reward_finite or (finite is not None and not finite(result[0])):
                return self._non_finite_step(result, reward_finite)
        return result

    def _non_finite_step(self, result: tuple[Any, ...], reward_finite: bool) -> Any:
        if reward_finite:
            error = self._observation_error("step", result[0])
        else:
            error = non_finite_reward_error(self.polyrl_env_name, self._step, self._episode, result[1])
        self._report(error)
        if self._deliver:
            return result[0], 0.0, True, False, {ERROR_INFO_KEY: error}
        raise error

    def _observation_error(self, where: str, observation: Any) -> NonFiniteDataError:
        return non_finite_observation_error(
            self.polyrl_env_name, where, self._step, self._episode, observation, self.observation_space
        )

    def _report(self, error: EnvStepError) -> EnvStepError:
        if self._on_error is not None:
            self._on_error(error)
        return error

    def _placeholder_observation(self) -> Any:
        # Only shape and dtype matter: the parent raises before anything reads it.
        return self.observation_space.sample()


def raise_delivered(infos: Iterable[Any]) -> None:
    """Raise the first error a `deliver_errors` guard put into these infos (one per env)."""
    for info in infos:
        if isinstance(info, dict) and ERROR_INFO_KEY in info:
            raise info[ERROR_INFO_KEY]


def error_record(error: EnvStepError) -> dict[str, Any]:
    """A JSON-able description of an EnvStepError, for processes that cannot pickle it to us."""
    fields = {key: value for key, value in vars(error).items() if not key.startswith("_")}
    return {"kind": type(error).__name__, "message": str(error), "fields": fields}


def error_from_record(record: dict[str, Any]) -> EnvStepError:
    """The EnvStepError (or NonFiniteDataError) `error_record` described."""
    kind = NonFiniteDataError if record["kind"] == NonFiniteDataError.__name__ else EnvStepError
    # As unpickling does: the message as the only arg, the attributes restored as they were.
    error = kind.__new__(kind)
    error.args = (record["message"],)
    error.__dict__.update(record["fields"])
    return error
