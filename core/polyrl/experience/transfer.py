"""Experience into and out of an agent's backend: checks first, then the driver's buffer methods.

In: `add_to_buffer` (Agent.add_experience and the spec's `prefill`) checks the algorithm has a
replay buffer that takes transitions ("experience.add"), that the buffer holds what a dataset
holds (no normalisation), that the batch fits the agent's spaces and its actions the action
space, then hands it to `driver.add_experience`. Out: `ExperienceTap` turns the driver's
collection on for a train() call whose callbacks implement on_experience, and takes each
iteration's transitions for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from polyrl.envs import space_kind
from polyrl.errors import ExperienceError
from polyrl.experience.batch import TransitionBatch, TransitionSchema
from polyrl.experience.capability import ADD, COLLECT, require_feature

if TYPE_CHECKING:
    from polyrl.backend import BackendDriver
    from polyrl.run import AgentParts, Run
    from polyrl.spec import AgentSpec

T = TypeVar("T")
#: How a driver call is made: directly, or timed for on_api_call (`Run.timed`'s shape).
Caller = Callable[[str, Callable[[], T], str], T]

#: What add_experience takes: a batch, or where a dataset is (a .npz file, a Minari id or directory).
ExperienceSource = TransitionBatch | str | os.PathLike[str]


def _direct(method: str, fn: Callable[[], T], summary: str) -> T:
    return fn()


def normalised(spec: AgentSpec) -> list[str]:
    """What the spec normalises of "observations" and "rewards": what transitions cannot cross."""
    normalize = spec.normalize
    if normalize is None:
        return []
    return [
        name for name, on in (("observations", normalize.observations), ("rewards", normalize.rewards)) if on
    ]


def _refuse_normalisation(parts: AgentParts) -> None:
    """ExperienceError when the buffer holds normalised values that outside transitions would not."""
    what = normalised(parts.spec)
    if not what:
        return
    raise ExperienceError(
        f"this agent normalises its {' and '.join(what)} (spec.normalize), so its replay buffer holds "
        f"normalised {' and '.join(what)} while recorded transitions hold the env's raw ones, and the "
        "two do not mix. Record the transitions and train the agent that takes "
        "them without normalisation (normalize=None)"
    )


def _read(experience: object) -> TransitionBatch:
    if isinstance(experience, TransitionBatch):
        return experience
    if isinstance(experience, str | os.PathLike):
        from polyrl.experience.datasets import read_experience

        return read_experience(os.fspath(experience))
    raise ExperienceError(
        f"add_experience takes a TransitionBatch or the path of a dataset (a .npz file polyrl wrote, "
        f"a Minari dataset directory or id), not {type(experience).__name__}"
    )


def _described(experience: object, batch: TransitionBatch) -> str:
    """How messages name the transitions: the dataset path as given, and its env when recorded."""
    env_id = batch.infos.get("env_id")
    recorded = f" (recorded on {env_id})" if env_id else ""
    if isinstance(experience, str | os.PathLike):
        return f"the dataset {os.fspath(experience)}{recorded}"
    return f"the batch{recorded}"


def _refuse_fractional_actions(batch: TransitionBatch, schema: TransitionSchema, what: str) -> None:
    """ExperienceError for continuous actions given to an agent of whole-number actions.

    `conformed` would cast them (0.7 becomes 0); whole numbers stored as floats are fine.
    """
    actions = batch.actions
    if schema.action_kind == "box" or not np.issubdtype(actions.dtype, np.floating):
        return
    fractional = actions != np.round(actions)
    if fractional.any():
        example = actions[fractional].flat[0].item()
        raise ExperienceError(
            f"{what} holds continuous actions (dtype {actions.dtype}, e.g. {example}) but "
            f"this agent's actions are {schema.action_kind}: record the transitions on the same env"
        )


def _outside(actions: np.ndarray, space: Any) -> np.ndarray:
    """A per-row mask of actions that are not in `space` (whose kind the schema already matched)."""
    kind = space_kind(space)
    rows = actions.reshape(len(actions), int(np.prod(actions.shape[1:])))  # also for no rows
    if kind == "box":
        low, high = space.low.reshape(1, -1), space.high.reshape(1, -1)
        inside = (rows >= low) & (rows <= high)
    elif kind == "discrete":
        first = int(space.start)
        inside = (rows >= first) & (rows < first + int(space.n))
    elif kind == "multi_discrete":
        starts = np.asarray(getattr(space, "start", 0)).reshape(1, -1)
        inside = (rows >= starts) & (rows < starts + np.asarray(space.nvec).reshape(1, -1))
    else:  # multi_binary
        inside = (rows == 0) | (rows == 1)
    outside: np.ndarray = ~inside.all(axis=1)
    return outside


def _check_values(batch: TransitionBatch, parts: AgentParts) -> None:
    """ExperienceError for actions outside the action space, or non-finite data the env would refuse."""
    space = parts.env.action_space
    outside = _outside(batch.actions, space)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        advice = (
            "clip them into the bounds first (np.clip(actions, space.low, space.high))"
            if space_kind(space) == "box"
            else "map them into the space first"
        )
        raise ExperienceError(
            f"{int(outside.sum())} of the {len(batch)} actions lie outside the agent's action space "
            f"{space} (the first: row {first}, {batch.actions[first].tolist()}); the buffer takes "
            f"actions as the env takes them: record on the same env, or {advice}"
        )
    if not parts.spec.check_finite:
        return
    arrays = {"rewards": batch.rewards}
    if np.issubdtype(batch.observations.dtype, np.floating):
        arrays.update(observations=batch.observations, next_observations=batch.next_observations)
    for name, array in arrays.items():
        bad = ~np.isfinite(array.reshape(len(array), int(np.prod(array.shape[1:])))).all(axis=1)
        if bad.any():
            raise ExperienceError(
                f"{int(bad.sum())} rows of the batch have NaN or infinite {name} (the first: row "
                f"{int(np.flatnonzero(bad)[0])}); drop them, or build the agent with check_finite=False"
            )


def add_to_buffer(parts: AgentParts, experience: object, call: Caller[None] = _direct) -> int:
    """Put `experience` (an ExperienceSource) into the agent's replay buffer; the rows added.

    UnsupportedOptionError when the algorithm has no buffer that takes transitions;
    ExperienceError when the agent normalises, or the batch does not fit its spaces.
    """
    require_feature(parts.info, parts.spec.algorithm, ADD)
    _refuse_normalisation(parts)
    batch = _read(experience)
    what = _described(experience, batch)
    schema = TransitionSchema.for_spaces(parts.env.observation_space, parts.env.action_space)
    conformed = batch.conformed(schema, what=what)  # another env's shapes are named first
    _refuse_fractional_actions(batch, schema, what)
    batch = conformed
    if not len(batch):
        return 0  # nothing to add (an empty selection of rows): the driver is not called
    _check_values(batch, parts)
    driver = parts.driver
    call("add_experience", lambda: driver.add_experience(batch), f"{len(batch)} rows")
    return len(batch)


def sample_from_buffer(parts: AgentParts, n: int, call: Caller[TransitionBatch] = _direct) -> TransitionBatch:
    """`n` rows drawn by the library's replay sampler (feature "experience.add")."""
    require_feature(parts.info, parts.spec.algorithm, ADD)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ExperienceError(f"sample_experience(n) needs a whole number of rows > 0, got {n!r}")
    if parts.driver.replay_size() == 0:
        raise ExperienceError(
            "the replay buffer is empty: train the agent or add_experience before sampling it"
        )
    driver = parts.driver
    return call("sample_experience", lambda: driver.sample_experience(int(n)), f"n={n}")


def apply_prefill(parts: AgentParts) -> int:
    """Put the spec's `prefill` dataset into a new agent's buffer (build_parts); the rows added."""
    if parts.spec.prefill is None:
        return 0
    return add_to_buffer(parts, parts.spec.prefill)


class ExperienceTap:
    """The driver's collection during one train() call whose callbacks implement on_experience.

    Follows the run's driver: `Agent.restore` from a callback swaps it, and the new one is
    switched on before its first iteration; the one switched on last is switched off at the end.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.driver: BackendDriver | None = None

    def start(self) -> None:
        """UnsupportedOptionError unless the algorithm reports what it collects; then switch it on."""
        parts = self.run.parts
        require_feature(parts.info, parts.spec.algorithm, COLLECT, "a callback implements on_experience")
        self.follow()

    def follow(self) -> None:
        """Switch collection on in the run's current driver, if it is not on there yet."""
        driver = self.run.parts.driver
        if driver is not self.driver:
            self.run.timed("driver", "set_collecting", lambda: driver.set_collecting(True), "True")
            self.driver = driver

    def take(self) -> TransitionBatch:
        """The transitions collected since the last take (the last iteration's)."""
        driver = self.run.parts.driver
        batch: TransitionBatch = self.run.timed("driver", "take_collected", driver.take_collected)
        return batch

    def stop(self) -> None:
        """Switch collection off again (the driver forgets nothing it must keep: the buffer stays)."""
        driver, self.driver = self.driver, None
        if driver is not None and driver is self.run.parts.driver:
            self.run.timed("driver", "set_collecting", lambda: driver.set_collecting(False), "False")


__all__ = ["ExperienceSource", "ExperienceTap", "add_to_buffer", "apply_prefill", "sample_from_buffer"]
