"""The common transition format: one batch of transitions, the same on every backend.

Every backend sees Box observations (polyrl encodes Dict, Tuple, Discrete and MultiBinary
observations into a float vector before a library sees them, `polyrl.observations.encoding`),
so one batch layout holds every space polyrl supports: observations as an array with a leading
batch axis in the agent's observation space (`agent.observation_space`: images stay uint8),
actions in the env's action space (Discrete: int64 indices, Box: float32 values in the env's
bounds, MultiDiscrete: int64 rows, MultiBinary: int8 rows).

A `TransitionBatch` is rows of (observation, action, reward, next observation, terminated,
truncated) with the episode each row belongs to and the vector-env slot it came from; rows of
one episode are in step order. `next_observations` of a row that ended its episode is the true
final observation (not the next episode's first). Log-probabilities and value estimates are
optional (on-policy collectors know them). `TransitionSchema` describes the arrays without
holding them: it travels in dataset files and is checked against an agent before its buffer
takes a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from polyrl._model import StrictModel
from polyrl.errors import ExperienceError

ActionKind = Literal["discrete", "box", "multi_discrete", "multi_binary"]

#: The array fields of a batch, in file order; the optional ones may be None.
REQUIRED_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminated",
    "truncated",
    "episode_ids",
    "env_ids",
)
OPTIONAL_FIELDS = ("log_probs", "values")
#: What to do when transitions do not fit an agent's spaces.
SAME_ENV = (
    "record the transitions on the same env (with the same observation wrappers) as the agent that takes them"
)
_ACTION_DTYPES: dict[str, Any] = {
    "discrete": np.int64,
    "box": np.float32,
    "multi_discrete": np.int64,
    "multi_binary": np.int8,
}


class TransitionSchema(StrictModel):
    """The shapes and dtypes of a batch's arrays (one row's shape: without the batch axis)."""

    observation_shape: list[int]
    observation_dtype: str
    action_kind: ActionKind
    action_shape: list[int]
    action_dtype: str

    @classmethod
    def for_spaces(cls, observation_space: Any, action_space: Any) -> TransitionSchema:
        """The schema of transitions of an agent with these (observation: Box) spaces."""
        from polyrl.envs import space_kind

        kind = space_kind(action_space)
        if kind not in _ACTION_DTYPES:
            raise ExperienceError(
                f"transitions hold discrete, box, multi_discrete or multi_binary actions, not {kind} "
                f"({action_space}): polyrl's backends train on those action spaces only"
            )
        if space_kind(observation_space) != "box":
            raise ExperienceError(
                f"transitions hold the observations a backend sees (a Box), not {observation_space}: "
                "pass agent.observation_space (the encoded space), not the env's raw one"
            )
        shape = () if kind == "discrete" else tuple(action_space.shape or ())
        return cls(
            observation_shape=list(observation_space.shape),
            observation_dtype=np.dtype(observation_space.dtype).name,
            action_kind=kind,  # type: ignore[arg-type]  # narrowed by the check above
            action_shape=list(shape),
            action_dtype=np.dtype(_ACTION_DTYPES[kind]).name,
        )

    def differences(self, other: TransitionSchema) -> list[tuple[str, Any, Any]]:
        """(field, other's value, this schema's value) for every field where `other` differs."""
        return [
            (name, getattr(other, name), getattr(self, name))
            for name in type(self).model_fields
            if getattr(other, name) != getattr(self, name)
        ]

    def check(self, other: TransitionSchema, what: str = "the batch", advice: str | None = None) -> None:
        """ExperienceError naming every difference between `other` (e.g. a batch's) and this schema.

        `what` names the transitions in the message; `advice` replaces its default advice (to
        record them on the agent's env).
        """
        differences = self.differences(other)
        if differences:
            named = "; ".join(
                f"{name}: {theirs} where the agent has {mine}" for name, theirs, mine in differences
            )
            raise ExperienceError(f"{what} does not fit this agent's spaces ({named}): {advice or SAME_ENV}")


class TransitionBatch(BaseModel):
    """Rows of transitions as NumPy arrays with a leading batch axis; see the module docstring.

    Build one with keyword arrays (`TransitionBatch(observations=..., actions=..., ...)`):
    the arrays are converted to the canonical dtypes (rewards float32, flags bool, ids int64)
    and checked to have one row each. `episode_ids` tells rows of different episodes apart;
    `env_ids` is the vector-env slot each row was collected in (0 when there was one env).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode_ids: np.ndarray
    env_ids: np.ndarray
    log_probs: np.ndarray | None = None
    values: np.ndarray | None = None
    infos: dict[str, str] = Field(default_factory=dict)
    """Free text about where the batch came from (backend, algorithm, env id), kept in files."""

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        dtypes = {
            "rewards": np.float32,
            "terminated": np.bool_,
            "truncated": np.bool_,
            "episode_ids": np.int64,
            "env_ids": np.int64,
            "log_probs": np.float32,
            "values": np.float32,
        }
        for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS):
            value = data.get(name)
            if value is None:
                continue
            data[name] = np.asarray(value, dtype=dtypes.get(name))
        return data

    @model_validator(mode="after")
    def _same_length(self) -> TransitionBatch:
        lengths = {name: len(array) for name, array in self.arrays().items()}
        if len(set(lengths.values())) > 1:
            raise ExperienceError(
                f"every array of a TransitionBatch needs one row per transition; got lengths {lengths}"
            )
        for name in ("rewards", "terminated", "truncated", "episode_ids", "env_ids", "log_probs", "values"):
            value = getattr(self, name)
            if value is not None and value.ndim != 1:
                raise ExperienceError(
                    f"{name} must be one value per transition (shape (n,)), got {value.shape}"
                )
        if self.observations.shape != self.next_observations.shape:
            raise ExperienceError(
                f"observations {self.observations.shape} and next_observations "
                f"{self.next_observations.shape} must have the same shape"
            )
        return self

    def __len__(self) -> int:
        return len(self.rewards)

    def arrays(self) -> dict[str, np.ndarray]:
        """The batch's arrays by field name (optional ones only when present)."""
        found = {name: getattr(self, name) for name in REQUIRED_FIELDS}
        found.update(
            {name: getattr(self, name) for name in OPTIONAL_FIELDS if getattr(self, name) is not None}
        )
        return found

    def transition_schema(self, action_kind: ActionKind | None = None) -> TransitionSchema:
        """This batch's schema; the action kind is guessed from the dtype unless given."""
        if action_kind is None:
            if np.issubdtype(self.actions.dtype, np.floating):
                action_kind = "box"
            elif self.actions.ndim == 1:
                action_kind = "discrete"
            elif self.actions.dtype == np.int8:
                action_kind = "multi_binary"
            else:
                action_kind = "multi_discrete"
        return TransitionSchema(
            observation_shape=list(self.observations.shape[1:]),
            observation_dtype=self.observations.dtype.name,
            action_kind=action_kind,
            action_shape=list(self.actions.shape[1:]),
            action_dtype=self.actions.dtype.name,
        )

    def conformed(self, schema: TransitionSchema, what: str = "the batch") -> TransitionBatch:
        """This batch with arrays cast to `schema`'s dtypes, or ExperienceError when shapes differ.

        Casting is safe for the dtypes polyrl writes (an int32 Discrete action becomes int64, a
        float64 observation float32); a shape difference means another env and is refused. The
        one exception: actions of shape (n,) for a Box(1,) action space are one value per row,
        as the agent's, and become (n, 1). `what` names the batch in the error.
        """
        batch = self
        if schema.action_shape == [1] and schema.action_kind != "discrete" and self.actions.ndim == 1:
            batch = self.model_copy(update={"actions": self.actions.reshape(-1, 1)})
        mine = batch.transition_schema(schema.action_kind)
        same_shapes = mine.model_copy(
            update={"observation_dtype": schema.observation_dtype, "action_dtype": schema.action_dtype}
        )
        schema.check(same_shapes, what=what, advice=_reshape_advice(schema, same_shapes))
        if mine == schema:
            return batch
        return batch.model_copy(
            update={
                "observations": batch.observations.astype(schema.observation_dtype),
                "next_observations": batch.next_observations.astype(schema.observation_dtype),
                "actions": batch.actions.astype(schema.action_dtype),
            }
        )

    def take(self, rows: Any) -> TransitionBatch:
        """The rows `rows` (a slice, index array or boolean mask) as a new batch."""
        return TransitionBatch(
            **{name: array[rows] for name, array in self.arrays().items()}, infos=self.infos
        )

    def episodes(self) -> list[TransitionBatch]:
        """The batch cut into its episodes, each in step order (in order of first appearance)."""
        order = list(dict.fromkeys(self.episode_ids.tolist()))
        return [self.take(self.episode_ids == episode) for episode in order]

    @classmethod
    def concatenate(cls, batches: Iterable[TransitionBatch]) -> TransitionBatch:
        """One batch of the rows of `batches`, in order; ExperienceError when their fields differ."""
        batches = [batch for batch in batches if len(batch)] or list(batches)
        if not batches:
            raise ExperienceError("cannot concatenate no batches")
        names = set(batches[0].arrays())
        if any(set(batch.arrays()) != names for batch in batches):
            raise ExperienceError(
                "cannot concatenate batches with different optional fields (log_probs, values)"
            )
        merged = {name: np.concatenate([batch.arrays()[name] for batch in batches]) for name in names}
        return cls(**merged, infos=batches[0].infos)

    @classmethod
    def empty(cls, schema: TransitionSchema) -> TransitionBatch:
        """A batch of no rows in `schema`'s shapes."""
        return cls(
            observations=np.zeros((0, *schema.observation_shape), dtype=schema.observation_dtype),
            actions=np.zeros((0, *schema.action_shape), dtype=schema.action_dtype),
            rewards=np.zeros(0),
            next_observations=np.zeros((0, *schema.observation_shape), dtype=schema.observation_dtype),
            terminated=np.zeros(0),
            truncated=np.zeros(0),
            episode_ids=np.zeros(0),
            env_ids=np.zeros(0),
        )


def _reshape_advice(schema: TransitionSchema, batch: TransitionSchema) -> str | None:
    """Advice for actions that differ from the agent's only in shape, not in their number of values."""
    differences = [name for name, _, _ in schema.differences(batch)]
    if differences != ["action_shape"]:
        return None
    if int(np.prod(schema.action_shape)) != int(np.prod(batch.action_shape)):
        return None
    wanted = "(n, " + ", ".join(str(n) for n in schema.action_shape) + ")" if schema.action_shape else "(n,)"
    return (
        f"the actions hold as many values per row as the agent's, in another shape: reshape them "
        f"to {wanted} (e.g. actions.reshape(len(actions), *action_space.shape))"
    )
