"""The transitions an RLlib agent's training samples, as polyrl rows (feature "experience.collect").

The driver registers `on_episode_created` and `on_sample_end` as RLlib callbacks. They run in
every env runner but act only in one that carries a `Collector` (the attribute `ATTRIBUTE`),
which `RllibDriver.set_collecting` gives the local env runner, the one that samples when
num_env_runners is 0: so, with collecting off, each call costs one attribute lookup.
`on_sample_end` sees the episode chunks `EnvRunner.sample()` returns (finished episodes, then
the cut ongoing ones) before the Algorithm hands them to its buffer or learners, whose
connectors may change them in place (PPO appends a step to unfinished chunks); the Collector
copies their arrays at once. A chunk of L steps gives L rows: observations[t], actions[t],
rewards[t], next observation observations[t + 1]; only the last row of a finished episode is
terminated or truncated, and its next observation is the episode's true final one (RLlib's
vector env resets at the step after). Every RLlib episode id becomes a running integer, unique
over the agent's life (the counter is kept in checkpoints); env_ids are the vector-env slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from polyrl.experience.batch import TransitionBatch

if TYPE_CHECKING:
    from polyrl_rllib.experience import Spaces

#: The env runner attribute holding the driver's Collector (absent: the callbacks do nothing).
ATTRIBUTE = "_polyrl_collector"


def on_episode_created(*, episode: Any, env_runner: Any, env_index: int, **_: Any) -> None:
    """RLlib callback: remember which vector-env slot a new episode runs in (when collecting)."""
    collector = getattr(env_runner, ATTRIBUTE, None)
    if collector is not None and collector.on:
        collector.slots[episode.id_] = int(env_index)


def on_sample_end(*, env_runner: Any, samples: Any, **_: Any) -> None:
    """RLlib callback: hand the chunks `sample()` returns to the env runner's Collector, if on."""
    collector = getattr(env_runner, ATTRIBUTE, None)
    if collector is not None and collector.on:
        collector.keep(samples)


class Collector:
    """Rows of the episode chunks sampled while on, kept until `take`."""

    def __init__(self, spaces: Spaces, infos: dict[str, str]) -> None:
        self.spaces = spaces
        self.infos = infos
        self.on = False
        self.chunks: list[dict[str, np.ndarray]] = []
        self.ids: dict[str, int] = {}  # RLlib episode id -> polyrl's, while the episode runs
        self.slots: dict[str, int] = {}  # RLlib episode id -> vector-env slot
        self.next_id = 0

    def start(self, runner: Any) -> None:
        """Collect what `runner` samples from now on (its ongoing episodes keep their slots)."""
        setattr(runner, ATTRIBUTE, self)
        for index, episode in enumerate(getattr(runner, "_ongoing_episodes", None) or []):
            if episode is not None:
                self.slots[episode.id_] = index
        self.on = True

    def stop(self) -> None:
        """Stop collecting; rows already kept stay for `take`. Episodes seen again get new ids."""
        self.on = False
        self.ids.clear()
        self.slots.clear()

    def keep(self, samples: Any) -> None:
        """Copy the rows of `samples` (SingleAgentEpisode chunks) into the kept chunks."""
        for episode in samples:
            steps = len(episode)
            if steps == 0:
                continue
            observations = np.array(episode.get_observations())
            if len(observations) != steps + 1:
                raise RuntimeError(
                    f"an RLlib episode chunk of {steps} steps holds {len(observations)} observations"
                )
            key = self.ids.get(episode.id_)
            if key is None:
                key = self.ids[episode.id_] = self.next_id
                self.next_id += 1
            slot = self.slots.get(episode.id_, 0)
            terminated, truncated = np.zeros(steps, dtype=bool), np.zeros(steps, dtype=bool)
            terminated[-1], truncated[-1] = bool(episode.is_terminated), bool(episode.is_truncated)
            chunk = {
                "observations": observations[:-1],
                "next_observations": observations[1:],
                "actions": np.array(episode.get_actions()),
                "rewards": np.array(episode.get_rewards(), dtype=np.float32),
                "terminated": terminated,
                "truncated": truncated,
                "episode_ids": np.full(steps, key, dtype=np.int64),
                "env_ids": np.full(steps, slot, dtype=np.int64),
            }
            if "action_logp" in episode.extra_model_outputs:  # the sampling policy's, when known
                logp = episode.get_extra_model_outputs("action_logp")
                chunk["log_probs"] = np.array(logp, dtype=np.float32)
            self.chunks.append(chunk)
            if episode.is_done:
                self.ids.pop(episode.id_, None)
                self.slots.pop(episode.id_, None)

    def take(self) -> TransitionBatch:
        """The rows kept since the last take, in the agent's observation and env's action space."""
        chunks, self.chunks = self.chunks, []
        if not chunks:
            return TransitionBatch.empty(self.spaces.schema).model_copy(update={"infos": self.infos})
        names = [name for name in chunks[0] if all(name in chunk for chunk in chunks)]
        arrays = {name: np.concatenate([chunk[name] for chunk in chunks]) for name in names}
        spaces = self.spaces
        for name in ("observations", "next_observations"):
            arrays[name] = spaces.to_agent_observations(arrays[name])
        arrays["actions"] = spaces.to_env_actions(arrays["actions"])
        return TransitionBatch(**arrays, infos=self.infos)
