"""Transitions in and out of an RLlib agent (polyrl.experience), through RLlib's own episode API.

Adding: a TransitionBatch's rows become `SingleAgentEpisode` chunks (observations o_0..o_T, the
last row's next observation being o_T, with the actions and rewards between) handed to the
Algorithm's replay buffer with `add(episodes)`, as the env runner's chunks are. Rows of one
episode that do not follow each other (a row's next observation is not the next row's
observation, as in transitions sampled from a buffer) become separate chunks. A chunk whose last
row is neither terminated nor truncated is unfinished: a later batch that continues that episode
id from its last observation is concatenated to it by the buffer (RLlib's own chunk mechanism).
Added chunks carry no extra model outputs (the sampling policy's log-probabilities and
distribution inputs, unknown for external rows): DQN's and SAC's training_step samples without
them (`include_extra_model_outputs=False`). Sampling: the buffer's `sample(num_items=n,
n_step=1, sample_episodes=True)`, whose length-1 episodes are the rows (one-step transitions
also when the config's n_step is larger: the learner then sums the same rows). Collecting:
the `on_sample_end` callback of the local env runner converts the episode chunks it returns
before any learner connector sees them (`Collector`).

RLlib keeps the RLModule's view: images float32 in [0, 1] channels last (`encoders.to_module`)
and continuous actions as the module emits them (normalised to [-1, 1] when the config
normalises actions). The rows polyrl exchanges are in the agent's observation space and the
env's action space; `Spaces` converts between the two.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from polyrl.errors import ExperienceError
from polyrl.experience.batch import TransitionBatch, TransitionSchema
from polyrl.observations.images import image_layout
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger
from ray.rllib.utils.spaces.space_utils import clip_action, normalize_action, unsquash_action

from polyrl_rllib import encoders
from polyrl_rllib.collect import Collector

__all__ = ["Collector", "Experience", "Spaces"]

#: How many unfinished added chunks are remembered for continuation (oldest forgotten first).
OPEN_CHUNKS = 4096


class Spaces:
    """Conversions between polyrl's rows (agent observation space, env action space) and RLlib's."""

    def __init__(self, observation_space: Any, action_space: Any, normalize: bool, clip: bool) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.module_observation_space = encoders.module_space(observation_space)
        self.layout = image_layout(observation_space)
        self.schema = TransitionSchema.for_spaces(observation_space, action_space)
        box = isinstance(action_space, gym.spaces.Box)
        self.normalize = box and normalize  # what RLlib's NormalizeAndClipActions connector does
        self.clip = box and clip and not normalize

    def to_module_observations(self, observations: np.ndarray) -> np.ndarray:
        """Agent observations as RLlib's envs give them to the module (images rescaled)."""
        if self.layout is None:
            return observations
        return encoders.to_module(observations, self.layout)

    def to_agent_observations(self, observations: np.ndarray) -> np.ndarray:
        """The inverse of `to_module_observations`: images back to their own dtype and layout."""
        dtype = self.observation_space.dtype
        layout = self.layout
        if layout is None:
            return np.asarray(observations).astype(dtype, copy=False)
        values = np.asarray(observations, dtype=np.float32) * np.float32(layout.high - layout.low)
        values = values + np.float32(layout.low)
        if not layout.channels_last:
            values = np.moveaxis(values, -1, -3)
        if np.issubdtype(dtype, np.integer):
            values = np.rint(values)
        return np.ascontiguousarray(values).astype(dtype)

    def to_module_actions(self, actions: np.ndarray) -> np.ndarray:
        """Env actions as the module emits them (what RLlib's episodes and learners hold)."""
        if self.normalize:
            return np.asarray(normalize_action(actions, self.action_space), dtype=np.float32)
        return actions

    def to_env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Module actions as the env runner sends them to the env (`RllibDriver.act` does the same)."""
        actions = np.asarray(actions)
        if self.normalize:
            actions = unsquash_action(actions, self.action_space)
        elif self.clip:
            actions = clip_action(actions, self.action_space)
        return actions.astype(self.schema.action_dtype, copy=False)


class Experience:
    """One driver's experience exchange: adding to and sampling from its replay buffer, collecting.

    Holds what outlives a call: the unfinished added chunks (polyrl episode id -> RLlib episode
    id), the generator sample_experience draws with (its own, so that looking at the buffer does
    not change what training samples) and the Collector. `state`/`load_state` keep them in a
    checkpoint.
    """

    def __init__(self, spaces: Spaces, seed: int | None, infos: dict[str, str]) -> None:
        self.spaces = spaces
        self.infos = infos
        self.open_chunks: dict[int, str] = {}
        self.rng = np.random.default_rng(seed)
        self.collector = Collector(spaces, infos)

    # -- adding -------------------------------------------------------------------------------
    def add(self, buffer: Any, batch: TransitionBatch) -> None:
        """Put `batch`'s rows into `buffer` as episode chunks with the buffer's own `add`."""
        if buffer is None:
            raise ExperienceError("this algorithm has no replay buffer to add transitions to")
        if not len(batch):
            return
        episodes = [self._episode(buffer, run) for run in _runs(batch)]
        buffer.add(episodes)

    def _episode(self, buffer: Any, run: TransitionBatch) -> SingleAgentEpisode:
        """One chunk of consecutive rows as an RLlib episode (continuing an open chunk if it fits)."""
        spaces = self.spaces
        key = int(run.episode_ids[0])
        observations = spaces.to_module_observations(
            np.concatenate([run.observations, run.next_observations[-1:]])
        )
        episode_id, t_started = self._continuation(buffer, key, observations[0])
        terminated, truncated = bool(run.terminated[-1]), bool(run.truncated[-1])
        if terminated or truncated:
            self.open_chunks.pop(key, None)
        else:
            self.open_chunks.pop(key, None)  # re-inserted last: the newest is forgotten last
            self.open_chunks[key] = episode_id
            while len(self.open_chunks) > OPEN_CHUNKS:
                self.open_chunks.pop(next(iter(self.open_chunks)))
        episode = SingleAgentEpisode(
            id_=episode_id,
            observations=list(observations),
            infos=[{} for _ in range(len(observations))],
            actions=list(spaces.to_module_actions(run.actions)),
            rewards=[float(r) for r in run.rewards],
            terminated=terminated,
            truncated=truncated and not terminated,
            t_started=t_started,
            len_lookback_buffer=0,
            observation_space=spaces.module_observation_space,
            action_space=spaces.action_space,
        )
        return episode.to_numpy()

    def _continuation(self, buffer: Any, key: int, first: np.ndarray) -> tuple[str, int]:
        """The RLlib id and start step of a chunk of polyrl episode `key` starting at `first`.

        An unfinished chunk of `key` still in the buffer whose last observation is `first` is
        continued (same id, the next step); anything else starts a new episode.
        """
        episode_id = self.open_chunks.get(key)
        index = buffer.episode_id_to_index.get(episode_id) if episode_id is not None else None
        if index is not None:
            stored = buffer.episodes[index - buffer._num_episodes_evicted]
            if not stored.is_done and np.array_equal(np.asarray(stored.get_observations(-1)), first):
                return str(episode_id), int(stored.t)
        return uuid.uuid4().hex, 0  # how RLlib names its episodes

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, buffer: Any, n: int, gamma: float) -> TransitionBatch:
        """`n` one-step transitions drawn by the buffer's own sampler, grouped by stored episode.

        The buffer samples with this object's generator and a throw-away metrics logger, and its
        sampled-steps counter is put back: training afterwards draws exactly what it would have.
        """
        if buffer is None:
            raise ExperienceError("this algorithm has no replay buffer to sample from")
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ExperienceError(f"sample_experience needs a positive number of transitions, got {n!r}")
        if buffer.get_num_timesteps() == 0:
            raise ExperienceError(
                "the replay buffer is empty: train the agent or add_experience before sampling"
            )
        saved = (buffer.rng, buffer.metrics, buffer.sampled_timesteps)
        last = getattr(buffer, "_last_sampled_indices", None)
        buffer.rng, buffer.metrics = self.rng, MetricsLogger(root=False)
        try:
            sampled = buffer.sample(num_items=int(n), n_step=1, gamma=gamma, beta=0.0, sample_episodes=True)
        finally:
            buffer.rng, buffer.metrics, buffer.sampled_timesteps = saved
            if last is not None:
                buffer._last_sampled_indices = last
        return self._sampled_batch(sampled)

    def _sampled_batch(self, sampled: list[Any]) -> TransitionBatch:
        """Length-1 sampled episodes as rows; rows of one stored episode together, in step order."""
        order = {episode_id: i for i, episode_id in enumerate(dict.fromkeys(e.id_ for e in sampled))}
        sampled = sorted(sampled, key=lambda e: (order[e.id_], int(e.t_started)))
        pairs = [np.asarray(e.get_observations()) for e in sampled]
        spaces = self.spaces
        return TransitionBatch(
            observations=spaces.to_agent_observations(np.stack([p[0] for p in pairs])),
            actions=spaces.to_env_actions(np.stack([np.asarray(e.get_actions())[0] for e in sampled])),
            rewards=np.array([np.asarray(e.get_rewards())[0] for e in sampled], dtype=np.float32),
            next_observations=spaces.to_agent_observations(np.stack([p[-1] for p in pairs])),
            terminated=np.array([bool(e.is_terminated) for e in sampled]),
            truncated=np.array([bool(e.is_truncated) for e in sampled]),
            episode_ids=np.array([order[e.id_] for e in sampled], dtype=np.int64),
            env_ids=np.zeros(len(sampled)),
            infos=self.infos,
        )

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (JSON): open added chunks, the sampling generator, the collector's ids."""
        return {
            "open_chunks": [[key, value] for key, value in self.open_chunks.items()],
            "rng": self.rng.bit_generator.state,
            "next_episode_id": self.collector.next_id,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from `state()` (missing keys, as in older checkpoints, keep the fresh values)."""
        self.open_chunks = {int(key): str(value) for key, value in state.get("open_chunks", [])}
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
        self.collector.next_id = int(state.get("next_episode_id", 0))


def _runs(batch: TransitionBatch) -> Iterator[TransitionBatch]:
    """The batch's episodes cut into runs of rows that follow each other (each in step order).

    Episodes come in order of first appearance, their rows in batch order (as
    `TransitionBatch.episodes`, without a pass over the batch per episode: datasets are large).
    A run ends where its episode ends, at a terminated or truncated row, or where the next
    row's observation is not this row's next observation (rows sampled from a buffer).
    """
    _, first, inverse = np.unique(batch.episode_ids, return_index=True, return_inverse=True)
    appearance = np.argsort(np.argsort(first))  # each distinct id's rank by first appearance
    rows = batch.take(np.argsort(appearance[inverse.ravel()], kind="stable"))
    axes = tuple(range(1, rows.observations.ndim))
    follows = (
        (rows.episode_ids[1:] == rows.episode_ids[:-1])
        & ~(rows.terminated[:-1] | rows.truncated[:-1])
        & np.all(rows.next_observations[:-1] == rows.observations[1:], axis=axes)
    )
    starts = [0, *(np.flatnonzero(~follows) + 1).tolist(), len(rows)]
    for start, stop in itertools.pairwise(starts):
        yield rows.take(slice(start, stop))
