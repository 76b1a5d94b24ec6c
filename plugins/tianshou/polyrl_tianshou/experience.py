"""Shared experience on Tianshou: transitions into and out of the driver's VectorReplayBuffer.

The buffer holds the policy's raw actions (what `policy.forward` returned, before
`map_action` clipped and scaled them to the env's bounds): external actions go in through
`map_action_inverse` (as the collector does for its random warm-up actions) and come out
through `map_action`, so a TransitionBatch always holds the actions the env received.

External rows go in through `VectorReplayBuffer.add(batch, buffer_ids)`, as the collector adds
its rows, with each episode of a batch kept contiguous in one sub-buffer (the least filled).
Tianshou's n-step returns walk `buffer.next`, which follows the next row of a sub-buffer
until a row is `done`, and its episode statistics assume that the collector's unfinished
episode in a sub-buffer runs from `_ep_start_idx` to the last row. So:

* the last row of every external episode segment gets `done` (its `terminated`/`truncated`
  stay as given, so the learner still bootstraps from its next observation): no n-step walk
  runs from external rows into collected ones;
* the collector's unfinished episode of the sub-buffer is moved behind the added rows (a
  rotation of the rows, through the buffer's Batch) and its running return, length and start
  are restored: the episode it finishes later is contiguous, and its return and length are
  reported exactly as without the added rows.

`CollectedRows` reads back the rows each `collect` call added (the last rows of every
sub-buffer, one sub-buffer per env slot), before an on-policy update empties the buffer.
`SharedExperience` is what the driver holds: the four experience methods of a BackendDriver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from polyrl.backend import EnvSource
from polyrl.errors import ExperienceError, UnsupportedOptionError
from polyrl.experience.batch import TransitionBatch, TransitionSchema
from tianshou.algorithm.algorithm_base import Policy
from tianshou.data import Batch, VectorReplayBuffer
from tianshou.data.types import RolloutBatchProtocol

from polyrl_tianshou.params import Settings
from polyrl_tianshou.replay import samplers


def env_actions(policy: Policy, raw: Any, schema: TransitionSchema) -> np.ndarray:
    """The actions the env receives for the buffer's raw actions (the collector's `map_action`)."""
    return np.asarray(policy.map_action(np.asarray(raw))).astype(schema.action_dtype)


def raw_actions(policy: Policy, actions: np.ndarray, stored: Any) -> np.ndarray:
    """The raw actions a buffer stores for actions in the env's space (`map_action_inverse`)."""
    raw = np.asarray(policy.map_action_inverse(np.asarray(actions)))
    # Keep the dtype the collector's rows have (float32 for Box, int64 for Discrete).
    return raw.astype(stored.dtype if stored is not None else raw.dtype)


def _rows(batch: TransitionBatch, policy: Policy, buffer: VectorReplayBuffer) -> Batch:
    """The batch as the Batch of keys the collector hands `buffer.add`."""
    meta = buffer._meta
    stored_act = meta.act if "act" in meta.get_keys() else None
    return Batch(
        obs=batch.observations,
        act=raw_actions(policy, batch.actions, stored_act),
        # float64, as the vector env returns rewards: the collector's rows keep full precision
        rew=batch.rewards.astype(np.float64),
        terminated=batch.terminated,
        truncated=batch.truncated,
        obs_next=batch.next_observations,
    )


def _segments(batch: TransitionBatch) -> list[np.ndarray]:
    """Row indices of each episode of the batch, in step order."""
    ids = batch.episode_ids
    return [np.flatnonzero(ids == episode) for episode in dict.fromkeys(ids.tolist())]


def _unfinished(part: Any) -> int:
    """Rows of the collector's episode still running in a sub-buffer (0: its last row ended one)."""
    if len(part) == 0 or part.done[part.last_index[0]]:
        return 0
    return int(part._ep_len)


def add_transitions(buffer: VectorReplayBuffer, policy: Policy, batch: TransitionBatch) -> None:
    """Add the batch's rows to the buffer (see the module docstring for where they go)."""
    rows = _rows(batch, policy, buffer)
    lengths = np.array([len(part) for part in buffer.buffers])
    assigned: list[list[np.ndarray]] = [[] for _ in buffer.buffers]
    for segment in _segments(batch):
        # The least filled sub-buffer (counting this batch's rows) spreads FIFO overwriting evenly.
        target = int(np.argmin(lengths))
        assigned[target].append(segment)
        lengths[target] += len(segment)
    for index, segments in enumerate(assigned):
        if segments:
            _add_to_part(buffer, index, rows, segments)


def _add_to_part(buffer: VectorReplayBuffer, index: int, rows: Batch, segments: list[np.ndarray]) -> None:
    part = buffer.buffers[index]
    running = _unfinished(part)
    room = part.maxsize - running
    if room < 1:
        raise ExperienceError(
            f"the replay buffer's part for env slot {index} ({part.maxsize} rows) holds nothing but the "
            "episode the env is in the middle of, so added transitions would overwrite it: raise "
            "buffer_size above n_envs x the episode length"
        )
    # The last row of each segment ends it for Tianshou's bookkeeping (see the module docstring).
    ends = np.concatenate([np.arange(len(s)) == len(s) - 1 for s in segments])
    order = np.concatenate(segments)
    for start in range(0, len(order), room):
        chunk_ends = ends[start : start + room].copy()
        chunk_ends[-1] = True  # an episode cut by the chunk size: its part ends before the running one
        _add_chunk(buffer, index, rows[order[start : start + room]], chunk_ends, running)


def _add_chunk(buffer: VectorReplayBuffer, index: int, rows: Batch, ends: np.ndarray, running: int) -> None:
    part = buffer.buffers[index]
    saved = part._ep_return, part._ep_len
    first = part._insertion_idx  # where the added rows start, before the rotation
    inserted, _, _, _ = buffer.add(rows, buffer_ids=np.full(len(rows), index))
    done = buffer._meta.done
    done[inserted[ends]] = True
    if running:
        # Move the collector's running episode (the `running` rows before the added ones) behind them.
        offset = int(buffer._offset[index])
        local = (first - running + np.arange(running + len(rows))) % part.maxsize
        block = local + offset
        moved = buffer._meta[block]
        buffer._meta[block] = moved[np.r_[running : len(block), 0:running]]
    part._ep_return, part._ep_len = saved
    part._ep_start_idx = (part._insertion_idx - running) % part.maxsize


def sample_transitions(
    buffer: VectorReplayBuffer,
    policy: Policy,
    n: int,
    schema: TransitionSchema,
    random_states: list[np.random.RandomState],
    infos: dict[str, str],
) -> TransitionBatch:
    """`n` rows drawn by the buffer's own `sample(n)`, with `random_states` in place of the
    samplers' own, so that looking at samples never shifts the training minibatches."""
    if n < 1:
        raise ExperienceError(f"sample_experience needs n >= 1 transitions, got {n}")
    if len(buffer) == 0:
        raise ExperienceError("the replay buffer is empty: train or add_experience before sampling")
    owners = samplers(buffer)
    training = [owner._random_state for owner in owners]
    for owner, state in zip(owners, random_states, strict=True):
        owner._random_state = state
    try:
        rows, indices = buffer.sample(n)
    finally:
        for owner, state in zip(owners, training, strict=True):
            owner._random_state = state
    # The sub-buffer a row is in: the env slot for collected rows (added rows go to any slot).
    env_ids = np.searchsorted(buffer.subbuffer_edges, indices, side="right") - 1
    return _transitions(rows, policy, schema, env_ids, np.full(len(indices), -1), infos)


#: the buffer fields a TransitionBatch is made of
_FIELDS = ("obs", "act", "rew", "terminated", "truncated", "obs_next")


def _transitions(
    rows: RolloutBatchProtocol | dict[str, np.ndarray],
    policy: Policy,
    schema: TransitionSchema,
    env_ids: np.ndarray,
    episode_ids: np.ndarray,
    infos: dict[str, str],
) -> TransitionBatch:
    field = {key: np.asarray(rows[key]) for key in _FIELDS}
    return TransitionBatch(
        observations=field["obs"].astype(schema.observation_dtype, copy=False),
        actions=env_actions(policy, field["act"], schema),
        rewards=field["rew"],
        next_observations=field["obs_next"].astype(schema.observation_dtype, copy=False),
        terminated=field["terminated"],
        truncated=field["truncated"],
        episode_ids=episode_ids,
        env_ids=env_ids,
        infos=infos,
    )


class CollectedRows:
    """The rows the collector adds while collecting is on, with episode ids over the agent's life.

    Episode ids come from one counter (saved with the driver's counters): a slot's rows get the
    slot's current id, and the row after an episode's end a new one. Starting to collect gives
    every slot a new id, so an episode already running then is reported from that point on.
    """

    def __init__(self, policy: Policy, schema: TransitionSchema, n_envs: int, infos: dict[str, str]) -> None:
        self.policy = policy
        self.schema = schema
        self.infos = infos
        self.on = False
        self.next_episode_id = 0
        self._current: list[int | None] = [None] * n_envs
        # per env slot: the arrays each collect call added (built into one batch by take: cheap per step)
        self._pending: list[list[dict[str, np.ndarray]]] = [[] for _ in range(n_envs)]

    def set_on(self, on: bool) -> None:
        """Start or stop keeping rows; rows kept before stopping stay until taken."""
        if on and not self.on:
            self._current = [None] * len(self._current)
        self.on = on

    def record(self, buffer: VectorReplayBuffer, n_steps: int) -> None:
        """Keep the rows one `collect(n_step=...)` call just added (every env stepped each time)."""
        if not self.on or n_steps == 0:
            return
        per_slot = n_steps // buffer.buffer_num
        for slot, part in enumerate(buffer.buffers):
            assert per_slot <= part.maxsize, "SharedExperience.set_collecting refuses such buffers"
            last = int(buffer.last_index[slot]) - int(buffer._offset[slot])
            local = (last - per_slot + 1 + np.arange(per_slot)) % part.maxsize
            rows = buffer[local + buffer._offset[slot]]
            ends = np.logical_or(rows.terminated, rows.truncated)
            episode_ids = np.empty(per_slot, np.int64)
            for step in range(per_slot):
                current = self._current[slot]
                if current is None:
                    current = self._current[slot] = self.next_episode_id
                    self.next_episode_id += 1
                episode_ids[step] = current
                if ends[step]:
                    self._current[slot] = None
            arrays = {key: np.asarray(rows[key]) for key in _FIELDS}
            self._pending[slot].append({**arrays, "episode_ids": episode_ids})

    def take(self) -> TransitionBatch:
        """The kept rows, env slot by env slot, each in step order; then forgets them."""
        chunks = [(slot, arrays) for slot, pending in enumerate(self._pending) for arrays in pending]
        self._pending = [[] for _ in self._pending]
        if not chunks:
            return TransitionBatch.empty(self.schema).model_copy(update={"infos": self.infos})
        rows = {key: np.concatenate([arrays[key] for _, arrays in chunks]) for key in _FIELDS}
        slots = np.concatenate([np.full(len(arrays["rew"]), slot) for slot, arrays in chunks])
        episode_ids = np.concatenate([arrays["episode_ids"] for _, arrays in chunks])
        return _transitions(rows, self.policy, self.schema, slots, episode_ids, self.infos)


class SharedExperience:
    """The driver's experience methods over its policy and buffer (BackendDriver's docstrings)."""

    def __init__(
        self, policy: Policy, buffer: VectorReplayBuffer, env: EnvSource, settings: Settings, seed: int | None
    ) -> None:
        self.policy = policy
        self.buffer = buffer
        self.algorithm = algorithm = settings.algorithm
        self.on_policy = settings.on_policy
        # Rows one collect call adds per env slot: all must still be in the buffer to be read back.
        steps = settings.iteration_steps if settings.on_policy else settings.collect_steps
        self.rows_per_collect = -(-steps // settings.n_envs)
        self.schema = TransitionSchema.for_spaces(env.observation_space, env.action_space)
        self.infos = {"backend": "tianshou", "algorithm": algorithm, "env": env.name}
        self.collected = CollectedRows(policy, self.schema, buffer.buffer_num, self.infos)
        # sample() draws from generators of its own: looking at samples leaves the training stream
        offset = None if seed is None else seed + 7919
        self._sample_states = [np.random.RandomState(offset) for _ in samplers(buffer)]

    def add(self, batch: TransitionBatch) -> None:
        """Off-policy: the rows into the replay buffer; on-policy: UnsupportedOptionError."""
        if self.on_policy:
            raise UnsupportedOptionError(
                f"{self.algorithm} is on-policy: its buffer holds one iteration's rollout and is emptied "
                "after the update, so it cannot take external transitions; use dqn, sac, td3 or ddpg"
            )
        add_transitions(self.buffer, self.policy, batch)

    def sample(self, n: int) -> TransitionBatch:
        """`n` rows from the buffer's own sampler (episode ids -1: the buffer does not know them)."""
        if self.on_policy:
            raise UnsupportedOptionError(f"{self.algorithm} has no replay buffer to sample from")
        return sample_transitions(self.buffer, self.policy, n, self.schema, self._sample_states, self.infos)

    def set_collecting(self, on: bool) -> None:
        """Start or stop reading back collected rows; ExperienceError when the buffer is too small."""
        room = min(part.maxsize for part in self.buffer.buffers)
        if on and self.rows_per_collect > room:
            raise ExperienceError(
                f"one collection step adds {self.rows_per_collect} rows per env but the replay buffer keeps "
                f"{room} per env, so the collected transitions cannot be read back: raise buffer_size "
                "to at least n_envs x train_freq"
            )
        self.collected.set_on(on)

    def record(self, n_steps: int) -> None:
        """Read back what a collect call of `n_steps` env steps added (when collecting is on)."""
        self.collected.record(self.buffer, n_steps)
