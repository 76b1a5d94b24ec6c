"""What goes in and out of an SB3 model besides training: external transitions into its replay
buffer, and what its learn() collects (episode returns; transitions as `TransitionBatch`es).

In: `add_to_replay` goes through SB3's own `ReplayBuffer.add`, with the rows shaped the way
SB3's `_store_transition` shapes its own (Box actions scaled to [-1, 1], `dones` = the episode
ended, `timeouts` = it was cut by a time limit), so they are ordinary buffer rows that SB3
samples and polyrl's checkpoints keep. `sample_replay` draws with SB3's own sampler.

Out: `TransitionCollector` is an SB3 callback that reads, at every env step of learn(), the
locals of `collect_rollouts` (on- and off-policy alike): the observation before the step
(`model._last_obs`, which SB3 replaces only after the callback), the actions sent to the env,
rewards, dones and infos (`terminal_observation`, `TimeLimit.truncated`), and on-policy the
value and log-probability of each action. `EpisodeCollector` reads the Monitor wrappers'
episode returns from the same locals. `ExperienceSupport` is the driver's side of it all.

SB3 moves the channels of uint8 images it thinks are channels-last to the front
(`VecTransposeImage`): its buffers and `_last_obs` then hold CxHxW where the agent's space, and
so a TransitionBatch, is HxWxC. Rows are transposed on the way in and out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from polyrl.backend import EnvSource
from polyrl.errors import ExperienceError, UnsupportedOptionError
from polyrl.experience.batch import TransitionBatch, TransitionSchema
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecTransposeImage, is_vecenv_wrapped

from polyrl_sb3.archive import STATE_FILE, corrupt

#: The .json key of the next episode id, so that ids stay unique over save and load.
NEXT_EPISODE_KEY = "experience_next_episode_id"


class EpisodeCollector(BaseCallback):
    """Collects (return, length) of every episode the Monitor wrappers report during learn()."""

    def __init__(self) -> None:
        super().__init__(verbose=0)
        self.episodes: list[tuple[float, int]] = []
        self.horizon: int | None = None

    def _on_training_start(self) -> None:
        # learn() sized its progress schedule to one chunk; the core knows the whole run.
        if self.horizon is not None and self.horizon > self.model.num_timesteps:
            self.model._total_timesteps = self.horizon

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None:
                self.episodes.append((float(episode["r"]), int(episode["l"])))
        return True


def transposes_images(model: BaseAlgorithm) -> bool:
    """Whether SB3 holds this model's observations channels-first where the agent's are last."""
    env = model.get_env()
    return env is not None and is_vecenv_wrapped(env, VecTransposeImage)


def _agent_layout(observations: np.ndarray, transposed: bool) -> np.ndarray:
    """A batch (n, ...) of SB3's observations in the agent's layout (n, H, W, C when transposed)."""
    return np.ascontiguousarray(observations.transpose(0, 2, 3, 1)) if transposed else observations


def _model_layout(observations: np.ndarray, transposed: bool) -> np.ndarray:
    """A batch (n, ...) of the agent's observations in SB3's layout (n, C, H, W when transposed)."""
    return VecTransposeImage.transpose_image(observations) if transposed else observations


def _replay_buffer(model: BaseAlgorithm, algorithm: str) -> Any:
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        raise UnsupportedOptionError(
            f"sb3/{algorithm} learns from its own rollouts and has no replay buffer to put transitions "
            "into or sample from: use an off-policy algorithm (dqn, sac, td3) to learn from shared experience"
        )
    return buffer


def _buffer_actions(model: BaseAlgorithm, actions: np.ndarray) -> np.ndarray:
    """Env-space actions as SB3 stores them; ExperienceError for actions outside the space."""
    space = model.action_space
    if isinstance(space, spaces.Box):
        low, high = space.low, space.high
        # A tolerance for float noise of a recorder's own unscaling; beyond it the data are wrong.
        slack = 1e-5 * np.maximum(high - low, 1.0)
        if np.any(actions < low - slack) or np.any(actions > high + slack):
            raise ExperienceError(
                f"actions outside the env's action space {space} (from {actions.min()} to {actions.max()}): "
                "record them on the same env, or clip them to the bounds before adding them"
            )
        # As `_sample_action` does for SAC/TD3: the buffer holds actions scaled to [-1, 1].
        return np.asarray(model.policy.scale_action(np.clip(actions, low, high)), dtype=np.float32)
    if isinstance(space, spaces.Discrete):
        start, n = int(space.start), int(space.n)
        if np.any(actions < start) or np.any(actions >= start + n):
            raise ExperienceError(
                f"discrete actions outside {space} (from {actions.min()} to {actions.max()}): record "
                "them on the same env as the agent's"
            )
    return actions


def add_to_replay(model: BaseAlgorithm, algorithm: str, batch: TransitionBatch) -> None:
    """Add the batch's rows to SB3's replay buffer through `ReplayBuffer.add`; counters unchanged.

    SB3's buffer holds one row per env slot at each position, and `add` fills a whole position
    (all `n_envs` slots) at once. The batch is therefore cut into `n_envs` contiguous parts, part
    `s` going to slot `s` in order: consecutive rows of an episode stay consecutive positions of
    one slot, as SB3's own rows are (what its n-step and memory-saving buffers rely on). A batch
    whose length is not a multiple of `n_envs` is refused: a partly filled position would be
    sampled with stale rows in its other slots. A full buffer overwrites its oldest rows, as
    SB3 does for collected ones.
    """
    buffer = _replay_buffer(model, algorithm)
    n_envs, rows = int(buffer.n_envs), len(batch)
    if rows % n_envs:
        raise ExperienceError(
            f"this agent's replay buffer stores {n_envs} transitions per position (one per env, n_envs="
            f"{n_envs}), so it takes batches of a multiple of {n_envs} rows; got {rows}: pass "
            f"batch.take(slice(0, {rows - rows % n_envs})), or build the agent with n_envs=1"
        )
    if rows == 0:
        return
    steps = rows // n_envs

    def by_position(array: np.ndarray) -> np.ndarray:
        # (rows, ...) -> (steps, n_envs, ...): position j holds row s * steps + j of slot s
        return np.asarray(array).reshape(n_envs, steps, *array.shape[1:]).swapaxes(0, 1)

    # SB3's convention (DummyVecEnv.step_wait): done = the episode ended either way, and
    # "TimeLimit.truncated" only when the time limit cut a non-terminal state; the sampler
    # then gives the learner done = terminated.
    ended = batch.terminated | batch.truncated
    timeouts = batch.truncated & ~batch.terminated
    transposed = transposes_images(model)
    observations = by_position(_model_layout(batch.observations, transposed))
    next_observations = by_position(_model_layout(batch.next_observations, transposed))
    actions = by_position(_buffer_actions(model, batch.actions))
    rewards, dones, cut = by_position(batch.rewards), by_position(ended), by_position(timeouts)
    for j in range(steps):
        infos = [{"TimeLimit.truncated": bool(flag)} for flag in cut[j]]
        buffer.add(observations[j], next_observations[j], actions[j], rewards[j], dones[j], infos)


def sample_replay(model: BaseAlgorithm, algorithm: str, n: int, schema: TransitionSchema) -> TransitionBatch:
    """`n` rows drawn by SB3's `ReplayBuffer.sample`, as a TransitionBatch.

    Drawn with the caller's global NumPy generator (not the agent's, so sampling does not change
    what the agent's training draws next). Observations as stored: polyrl normalises inside the
    env, never with SB3's VecNormalize, so no `env` is passed. Actions are unscaled back to the
    env's space. SB3's sample holds what its learner trains on: `dones` with time-limit cuts
    removed, which is `terminated`; whether a row was cut by a time limit is not part of a
    sample, so `truncated` is False. Nor does a sample say which episode or env slot a row came
    from: `episode_ids` and `env_ids` are -1.
    """
    buffer = _replay_buffer(model, algorithm)
    if n < 0:
        raise ExperienceError(f"cannot sample {n} transitions: ask for n >= 0")
    if buffer.size() == 0:
        raise ExperienceError(
            f"sb3/{algorithm}'s replay buffer is empty: train the agent or add experience before sampling"
        )
    samples = buffer.sample(n)
    actions = samples.actions.cpu().numpy()
    space = model.action_space
    if isinstance(space, spaces.Box):
        unscaled = model.policy.unscale_action(actions.reshape(n, *space.shape))
        actions = np.clip(unscaled, space.low, space.high)
    else:
        actions = actions.reshape(n, *schema.action_shape)
    transposed = transposes_images(model)
    observations, next_observations = (
        _agent_layout(array.cpu().numpy(), transposed).astype(schema.observation_dtype, copy=False)
        for array in (samples.observations, samples.next_observations)
    )
    return TransitionBatch(
        observations=observations,
        actions=actions.astype(schema.action_dtype, copy=False),
        rewards=samples.rewards.cpu().numpy().reshape(n),
        next_observations=next_observations,
        terminated=samples.dones.cpu().numpy().reshape(n) > 0.5,
        truncated=np.zeros(n, dtype=bool),
        episode_ids=np.full(n, -1),
        env_ids=np.full(n, -1),
        infos={"backend": "sb3", "algorithm": algorithm, "source": "replay sample"},
    )


class TransitionCollector(BaseCallback):
    """An SB3 callback keeping every env step of learn() as rows (one per env slot).

    The driver passes it to learn() only while collecting, so other runs pay nothing. Episode
    ids come from a running counter over the agent's life (kept in checkpoints): each env slot's
    episode gets the next id when it starts, or when collecting starts in the middle of it.
    """

    def __init__(
        self, schema: TransitionSchema, infos: dict[str, str], next_episode_id: int, transposed: bool
    ) -> None:
        super().__init__(verbose=0)
        self.schema = schema
        self.transposed = transposed  # SB3 sees images channels-first (see the module docstring)
        self.infos = infos
        self.next_episode_id = next_episode_id
        self.on = False
        self._slot_episodes: np.ndarray | None = None
        self._stopped_at: int | None = None
        self._steps: list[dict[str, np.ndarray]] = []

    def start(self, env_steps: int) -> None:
        """Collect from now on (forgetting rows not taken before); `env_steps`: the model's count.

        The episodes under way keep their ids when no env step was made since `stop` (e.g.
        between two train() calls), so that an episode's rows of both calls belong together;
        after steps not seen (an episode may have ended) they get new ids.
        """
        if self.on:
            return
        self.on = True
        self._steps = []
        if env_steps != self._stopped_at:
            self._slot_episodes = None  # assigned at the next step, when n_envs is known

    def stop(self, env_steps: int) -> None:
        """Collect no more; what was collected stays until `take`."""
        if self.on:
            self.on, self._stopped_at = False, env_steps

    def _new_ids(self, count: int) -> np.ndarray:
        ids = np.arange(self.next_episode_id, self.next_episode_id + count, dtype=np.int64)
        self.next_episode_id += count
        return ids

    def _on_step(self) -> bool:
        if not self.on:
            return True
        local = self.locals
        dones = np.asarray(local["dones"], dtype=bool)
        n_envs = len(dones)
        if self._slot_episodes is None or len(self._slot_episodes) != n_envs:
            self._slot_episodes = self._new_ids(n_envs)
        infos = local["infos"]
        # The true final observation of an ended episode: SB3's VecEnv has already reset that slot.
        next_obs = np.array(local["new_obs"], copy=True)
        for slot, info in enumerate(infos):
            if dones[slot] and info.get("terminal_observation") is not None:
                next_obs[slot] = info["terminal_observation"]
        timeouts = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
        on_policy = isinstance(self.model, OnPolicyAlgorithm)
        # On-policy, `actions` are the policy's raw samples and `clipped_actions` what the env got
        # (unscaled or clipped to the Box); off-policy, `actions` is what the env got.
        sent = local["clipped_actions"] if on_policy else local["actions"]
        step = {
            "observations": np.array(self.model._last_obs, copy=True),  # replaced only after on_step
            "actions": np.array(sent, copy=True).reshape(n_envs, *self.schema.action_shape),
            # Copied now: on-policy SB3 then adds the bootstrapped value of time-limit cuts in place.
            "rewards": np.array(local["rewards"], dtype=np.float32, copy=True),
            "next_observations": next_obs,
            "terminated": dones & ~timeouts,
            "truncated": dones & timeouts,
            "episode_ids": self._slot_episodes.copy(),
        }
        if on_policy:
            step["values"] = local["values"].detach().cpu().numpy().reshape(n_envs)
            step["log_probs"] = local["log_probs"].detach().cpu().numpy().reshape(n_envs)
        self._steps.append(step)
        for ended in np.flatnonzero(dones):
            self._slot_episodes[ended] = self._new_ids(1)[0]
        return True

    def take(self) -> TransitionBatch:
        """The rows collected since the last take, slot by slot, each slot's in step order."""
        steps, self._steps = self._steps, []
        if not steps:
            return TransitionBatch.empty(self.schema).model_copy(update={"infos": dict(self.infos)})
        n_envs = len(steps[0]["rewards"])
        arrays = {}
        for name in steps[0]:
            stacked = np.stack([step[name] for step in steps])  # (steps, n_envs, ...)
            arrays[name] = stacked.swapaxes(0, 1).reshape(len(steps) * n_envs, *stacked.shape[2:])
        arrays["env_ids"] = np.repeat(np.arange(n_envs), len(steps))
        for name in ("observations", "next_observations"):
            observations = _agent_layout(arrays[name], self.transposed)
            arrays[name] = observations.astype(self.schema.observation_dtype, copy=False)
        arrays["actions"] = arrays["actions"].astype(self.schema.action_dtype, copy=False)
        return TransitionBatch(**arrays, infos=dict(self.infos))


class ExperienceSupport:
    """The driver's experience methods over one model: adding, sampling, collecting, the ids' state."""

    def __init__(self, model: BaseAlgorithm, algorithm: str, env: EnvSource) -> None:
        self.model = model
        self.algorithm = algorithm
        self.env = env
        self.next_episode_id = 0  # until the collector exists (it is made when collecting starts)
        self._collector: TransitionCollector | None = None

    def schema(self) -> TransitionSchema:
        """The agent's transition schema (its encoded observations, the env's actions)."""
        return TransitionSchema.for_spaces(self.env.observation_space, self.env.action_space)

    def add(self, batch: TransitionBatch) -> None:
        """See `add_to_replay`."""
        add_to_replay(self.model, self.algorithm, batch)

    def sample(self, n: int) -> TransitionBatch:
        """See `sample_replay`."""
        return sample_replay(self.model, self.algorithm, n, self.schema())

    def set_collecting(self, on: bool) -> None:
        """Start or stop the transition collector (made on first start)."""
        if self._collector is None:
            if not on:
                return
            infos = {"backend": "sb3", "algorithm": self.algorithm, "env": self.env.name}
            self._collector = TransitionCollector(
                self.schema(), infos, self.next_episode_id, transposes_images(self.model)
            )
        if on:
            self._collector.start(self.model.num_timesteps)
        else:
            self._collector.stop(self.model.num_timesteps)

    def take(self) -> TransitionBatch:
        """The collected rows (none when collecting never started)."""
        if self._collector is None:
            return TransitionBatch.empty(self.schema())
        return self._collector.take()

    def callback(self, episodes: EpisodeCollector) -> Any:
        """What learn() gets: the episode collector, and the transition collector while it is on."""
        if self._collector is not None and self._collector.on:
            return [episodes, self._collector]  # SB3 wraps a list in a CallbackList
        return episodes

    def state(self) -> dict[str, Any]:
        """What the checkpoint's JSON keeps: the next episode id."""
        return {NEXT_EPISODE_KEY: self.next_id()}

    def next_id(self) -> int:
        """The id the next collected episode gets."""
        return self.next_episode_id if self._collector is None else self._collector.next_episode_id

    def restore(self, state: dict[str, Any]) -> None:
        """Take the next episode id from a checkpoint's JSON (absent from older ones: 0)."""
        next_id = state.get(NEXT_EPISODE_KEY, 0)
        if not isinstance(next_id, int) or isinstance(next_id, bool) or next_id < 0:
            raise corrupt(STATE_FILE, f"{NEXT_EPISODE_KEY} {next_id!r} is not an int >= 0")
        self.next_episode_id = next_id
        if self._collector is not None:
            self._collector.next_episode_id = next_id
