"""Recording play(): every step of the played episodes kept as transitions, written at the end.

`play(record=PATH)` and `polyrl record` use a PlayRecorder: the play loop hands it each step
(observation, action as sent to the env, reward, next observation, flags) and it writes them
with `write_experience` once play ends. Episode ids are the episode indices of the play call,
env id 0. Observations are the env's (after the spec's wrappers and polyrl's encoding, in the
agent's observation space), not normalised: what the env gave, so any agent on that env can
take them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrl.experience.batch import REQUIRED_FIELDS, TransitionBatch, TransitionSchema
from polyrl.experience.datasets import check_target, experience_format, write_experience

if TYPE_CHECKING:
    from polyrl.agent import Agent


class PlayRecorder:
    """Collects the steps of one play() call and writes them to `target` (.npz file or Minari directory).

    The target is checked when the recorder is made (before any step is played): an existing
    file or dataset there is an ExperienceError, never replaced; a Minari target without
    `polyrl[experience]` is an ExtraNotInstalledError.
    """

    def __init__(self, target: str | Path, agent: Agent, deterministic: bool) -> None:
        self.target = check_target(target)
        if experience_format(self.target) == "minari":
            from polyrl.experience.minari_io import require_minari

            require_minari()  # a missing extra fails now, not after the episodes are played
        self.observation_space = agent.observation_space
        self.action_space = agent.action_space
        self.schema = TransitionSchema.for_spaces(self.observation_space, self.action_space)
        self.env_id = agent.env_source.name
        self.infos = {
            "source": "play",
            "backend": agent.backend,
            "algorithm": agent.spec.algorithm,
            "env_id": self.env_id,
            "actions": "deterministic" if deterministic else "stochastic",
        }
        # One env (env id 0 for every row): every required field but env_ids is kept per step.
        self._rows: dict[str, list[Any]] = {name: [] for name in REQUIRED_FIELDS if name != "env_ids"}

    def __len__(self) -> int:
        return len(self._rows["rewards"])

    def add(
        self,
        episode: int,
        observation: Any,
        action: Any,
        reward: float,
        next_observation: Any,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Keep one step (copies: an env may reuse its observation buffer)."""
        rows = self._rows
        rows["observations"].append(np.array(observation, copy=True))
        rows["actions"].append(np.array(action, copy=True))
        rows["rewards"].append(float(reward))
        rows["next_observations"].append(np.array(next_observation, copy=True))
        rows["terminated"].append(bool(terminated))
        rows["truncated"].append(bool(truncated))
        rows["episode_ids"].append(episode)

    def batch(self) -> TransitionBatch:
        """The steps kept so far as a batch in the agent's schema."""
        if not len(self):
            return TransitionBatch.empty(self.schema).model_copy(update={"infos": dict(self.infos)})
        arrays = {name: np.stack(values) for name, values in self._rows.items()}
        batch = TransitionBatch(**arrays, env_ids=np.zeros(len(self), np.int64), infos=dict(self.infos))
        return batch.conformed(self.schema)

    def write(self) -> Path | None:
        """Write the kept steps with write_experience; the path written, or None when no step was played."""
        if not len(self):
            return None
        return write_experience(
            self.batch(),
            self.target,
            schema=self.schema,
            env_id=self.env_id,
            observation_space=self.observation_space,
            action_space=self.action_space,
        )
