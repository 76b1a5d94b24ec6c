"""DqnDriver: deep Q-learning in plain PyTorch, as a polyrl backend driver.

The rules a driver must keep, each checked by the conformance suite:
- the learning rate lives in the optimizer's param_groups: read and write it there, nowhere else;
- one train_iteration() collects exactly `iteration_steps` env steps, never "the rest of the run";
- every random draw (network init, exploration, minibatches) comes from the agent's own
  generators, never the process-global ones, so agents in one process do not disturb each other;
- a checkpoint holds everything the next update depends on (networks, Adam's moments, the replay
  buffer, the native step counter, the random states), so a loaded agent continues exactly;
- losses are reported once updates have started;
- observations come from envs built with `EnvSource.make()` (polyrl encodes Discrete and Dict
  observations into vectors there, and normalises them when the spec asks), and images get the
  CNN `resolve_network` describes (`network.py`);
- the networks live on `spec.device`, resolved with `polyrl.driverkit.resolve_device`, which
  refuses a GPU this machine does not have;
- external transitions (`add_experience`, feature "experience.add") become ordinary buffer rows:
  sampled like collected ones, kept by `save`, and no counter moves (they are not env steps);
- while the core asks for them (`set_collecting`, feature "experience.collect"), every env step
  of `train_iteration` is kept as a transition row, with the true final observation of an episode.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from polyrl import AgentSpec
from polyrl.backend import BackendDriver, DriverReport, EffectiveHyperparameters, EnvSource
from polyrl.driverkit import (
    load_optimizer_parameters,
    optimizer_learning_rate,
    optimizer_parameters,
    resolve_device,
    set_optimizer_learning_rate,
    unknown_options_error,
)
from polyrl.errors import CorruptCheckpointError, UnsupportedOptionError
from polyrl.experience import TransitionBatch, TransitionSchema
from polyrl.torch_layers import describe_layers

from polyrl_torch_dqn.network import build_q_network, describe_encoder

#: What a spec field left at None becomes (the `dqn` section's fields included).
DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "gamma": 0.99,
    "batch_size": 64,
    "iteration_steps": 200,
    "buffer_size": 50_000,
    "learning_starts": 1000,  # transitions in the buffer before the first update
    "train_freq": 1,  # one round of updates every `train_freq` vector-env steps ...
    "gradient_steps": 1,  # ... of this many gradient steps
    "target_update_interval": 250,  # gradient steps between copies into the target network
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
}
OPTIONS: dict[str, int] = {"exploration_steps": 10_000}  # native env steps epsilon decays over
NETWORKS_FILE, REPLAY_FILE, RNG_FILE, STATE_FILE = "networks.pt", "replay.npz", "torch_rng.npy", "state.json"


class ReplayBuffer:
    """Transitions in fixed NumPy arrays; once full, the oldest are overwritten first.

    Observations keep the space's shape and dtype (uint8 images stay uint8: 4x smaller than float).
    """

    FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated")

    def __init__(self, capacity: int, observation_space: Any) -> None:
        shape, dtype = (capacity, *observation_space.shape), observation_space.dtype
        self.observations = np.zeros(shape, dtype=dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_observations = np.zeros(shape, dtype=dtype)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.full = capacity, 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, *batch: np.ndarray) -> None:
        """Append one transition per env: (observations, actions, rewards, next_obs, terminated)."""
        for row in zip(*batch, strict=True):
            for name, value in zip(self.FIELDS, row, strict=True):
                getattr(self, name)[self.pos] = value
            self.pos = (self.pos + 1) % self.capacity
            self.full = self.full or self.pos == 0

    def sample(self, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A uniform minibatch, indices drawn from the agent's torch generator."""
        index = torch.randint(len(self), (size,), generator=generator).numpy()
        return {name: torch.as_tensor(getattr(self, name)[index]) for name in self.FIELDS}

    def save(self, path: Path) -> None:
        """Plain arrays in one .npz (no pickle)."""
        np.savez(path, pos=self.pos, full=self.full, **{name: getattr(self, name) for name in self.FIELDS})

    def load(self, path: Path) -> None:
        """Take the arrays and write position saved by `save` (same capacity and shapes)."""
        with np.load(path, allow_pickle=False) as saved:
            for name in self.FIELDS:
                if saved[name].shape != getattr(self, name).shape:
                    raise CorruptCheckpointError(f"{path}: {name} has shape {saved[name].shape}")
                setattr(self, name, saved[name].copy())
            self.pos, self.full = int(saved["pos"]), bool(saved["full"])


class DqnDriver(BackendDriver):
    """DQN on Box observations and Discrete actions; the driver is its own native library."""

    def __init__(self, spec: AgentSpec, env: EnvSource) -> None:
        section = spec.dqn.model_dump(exclude_none=True) if spec.dqn else {}
        if "exploration_fraction" in section:
            raise UnsupportedOptionError(
                "tdqn decays epsilon over a fixed number of env steps: remove dqn.exploration_fraction "
                "and set backend_options.exploration_steps"
            )
        if unknown := set(spec.backend_options) - set(OPTIONS):
            raise unknown_options_error("tdqn", spec.algorithm, unknown, OPTIONS)
        top = {k: getattr(spec, k) for k in ("learning_rate", "gamma", "batch_size", "iteration_steps")}
        self.config = {**DEFAULTS, **{k: v for k, v in top.items() if v is not None}, **section}
        self.config.update({**OPTIONS, **spec.backend_options})
        self.n_envs = spec.n_envs
        # Whole vector-env steps only: round iteration_steps up to a multiple of n_envs.
        self.iteration_steps = math.ceil(self.config["iteration_steps"] / self.n_envs) * self.n_envs
        # The agent's own random state. Without a seed: fresh OS entropy (not the global RNGs).
        # (A fresh SeedSequence's entropy is an int.)
        seed = spec.seed if spec.seed is not None else cast(int, np.random.SeedSequence().entropy) % 2**31
        self.rng = np.random.default_rng(seed)  # exploration
        self.generator = torch.Generator().manual_seed(seed)  # minibatch indices (drawn on the CPU)
        # The spec's device; "cuda:7" on a machine without it is DeviceUnavailableError, before any work.
        self.device = torch.device(resolve_device(spec.device))

        # Its own envs, each seeded once at creation; same-step autoreset gives the final
        # observation of an ended episode in `infos` and the next episode's first in `obs`.
        self.envs: gym.vector.VectorEnv[np.ndarray, np.ndarray, np.ndarray] = gym.vector.SyncVectorEnv(
            [env.make for _ in range(self.n_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        self.observations: np.ndarray
        self.observations, _ = self.envs.reset(seed=[seed + i for i in range(self.n_envs)])
        self.episode_returns = np.zeros(self.n_envs)
        self.episode_lengths = np.zeros(self.n_envs, dtype=np.int64)

        # Q-network and target; the init draws from a forked, seeded torch RNG (global one untouched),
        # on the CPU, so the weights are the same on every device.
        # Spaces as the backend declares them (polyrl checked): a Box (vector or image), Discrete actions.
        self.observation_space: Any = env.observation_space
        action_space: Any = env.action_space
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            q_net = build_q_network(spec.network, self.observation_space, int(action_space.n))
        self.q_net = q_net.to(self.device)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=self.config["learning_rate"])
        self.buffer = ReplayBuffer(self.config["buffer_size"], self.observation_space)

        self.total_steps = 0  # what polyrl reads as env_steps
        # The "library's" own counter, driving epsilon and the update schedule. A wrapper around
        # a real library has both (SB3's num_timesteps and polyrl's count); both must be restored.
        self.native_steps = 0
        self.updates = 0  # gradient steps so far (drives the target-network copies)
        # Transitions kept for the core while it collects (None: not collecting); each env slot's
        # running episode id, unique over this process's life of the agent.
        self.collected: list[TransitionBatch] | None = None
        self.episode_ids = np.arange(self.n_envs, dtype=np.int64)
        self.next_episode_id = self.n_envs

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: AgentSpec, env: EnvSource) -> DqnDriver:
        """A fresh, untrained agent."""
        return cls(spec, env)

    @classmethod
    def load(cls, directory: Path, spec: AgentSpec, env: EnvSource) -> DqnDriver:
        """Rebuild from `save`'s files: networks, optimizer, replay buffer, counters, random states."""
        files = (NETWORKS_FILE, REPLAY_FILE, RNG_FILE, STATE_FILE)
        if missing := [name for name in files if not (directory / name).is_file()]:
            raise CorruptCheckpointError(f"{directory} lacks {missing}: not a tdqn checkpoint")
        driver = cls(spec, env)
        networks = torch.load(directory / NETWORKS_FILE, weights_only=True, map_location=driver.device)
        driver.q_net.load_state_dict(networks["q_net"])
        driver.target_net.load_state_dict(networks["target_net"])
        driver.optimizer.load_state_dict(networks["optimizer"])  # Adam's moments and its lr
        driver.buffer.load(directory / REPLAY_FILE)
        driver.generator.set_state(torch.from_numpy(np.load(directory / RNG_FILE, allow_pickle=False)))
        state = json.loads((directory / STATE_FILE).read_text())
        driver.rng.bit_generator.state = state["numpy_rng"]
        driver.total_steps = int(state["env_steps"])
        driver.native_steps = int(state["native_steps"])
        driver.updates = int(state["updates"])
        return driver

    # -- acting ----------------------------------------------------------------------------------
    def epsilon(self) -> float:
        """The exploration rate: linear from initial to final over `exploration_steps` native steps."""
        progress = min(1.0, self.native_steps / max(1, self.config["exploration_steps"]))
        start, end = self.config["exploration_initial_eps"], self.config["exploration_final_eps"]
        return start + progress * (end - start)

    def act(self, observations: Any, deterministic: bool) -> np.ndarray:
        """Greedy actions, or epsilon-greedy ones drawn from the agent's own NumPy generator."""
        batch = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device)
        with torch.no_grad():
            greedy = self.q_net(batch).argmax(dim=1).cpu().numpy()
        if deterministic:
            return greedy
        explore = self.rng.random(len(greedy)) < self.epsilon()
        head = cast(torch.nn.Linear, self.q_net.head)  # the output layer: one unit per action
        return np.where(explore, self.rng.integers(head.out_features, size=len(greedy)), greedy)

    # -- training --------------------------------------------------------------------------------
    def train_iteration(self) -> DriverReport:
        """Collect exactly `iteration_steps` env steps; update every `train_freq` vector steps."""
        episodes: list[tuple[float, int]] = []
        losses: list[float] = []
        for _ in range(self.iteration_steps // self.n_envs):
            actions = self.act(self.observations, deterministic=False)
            observations, rewards, terminated, truncated, infos = self.envs.step(actions)
            next_observations = observations.copy()
            for i in np.flatnonzero(infos.get("_final_obs", [])):
                next_observations[i] = infos["final_obs"][i]  # the true last observation of an episode
            self.buffer.add(self.observations, actions, rewards, next_observations, terminated)
            if self.collected is not None:
                self._collect(actions, rewards, next_observations, terminated, truncated)
            self.observations = observations
            self.total_steps += self.n_envs
            self.native_steps += self.n_envs
            self.episode_returns += rewards
            self.episode_lengths += 1
            for i in np.flatnonzero(terminated | truncated):
                episodes.append((float(self.episode_returns[i]), int(self.episode_lengths[i])))
                self.episode_returns[i], self.episode_lengths[i] = 0.0, 0
            ready = len(self.buffer) >= max(self.config["learning_starts"], self.config["batch_size"])
            if ready and (self.native_steps // self.n_envs) % self.config["train_freq"] == 0:
                losses += [self._update() for _ in range(self.config["gradient_steps"])]
        loss = float(np.mean(losses)) if losses else None
        return DriverReport(
            env_steps=self.iteration_steps,
            episodes=episodes,
            losses={"loss": loss, "q_loss": loss} if loss is not None else {},
            metrics={"epsilon": self.epsilon(), "updates": float(self.updates)},
        )

    def _collect(
        self, actions: Any, rewards: Any, next_observations: Any, terminated: Any, truncated: Any
    ) -> None:
        """Keep one vector step as rows (one per env slot); ended episodes get fresh ids after."""
        assert self.collected is not None
        self.collected.append(
            TransitionBatch(
                observations=self.observations.copy(),
                actions=actions,
                rewards=rewards,
                next_observations=next_observations,
                terminated=terminated,
                truncated=truncated,
                episode_ids=self.episode_ids.copy(),
                env_ids=np.arange(self.n_envs),
            )
        )
        for i in np.flatnonzero(terminated | truncated):
            self.episode_ids[i] = self.next_episode_id
            self.next_episode_id += 1

    # -- experience in and out (features "experience.add" and "experience.collect") --------------
    def add_experience(self, batch: TransitionBatch) -> None:
        """Ordinary buffer rows; total_steps, native_steps and updates stay as they are."""
        self.buffer.add(
            batch.observations, batch.actions, batch.rewards, batch.next_observations, batch.terminated
        )

    def sample_experience(self, n: int) -> TransitionBatch:
        """`n` rows drawn by the buffer's own sampler, with a generator of its own (not training's)."""
        sampled = {k: v.numpy() for k, v in self.buffer.sample(n, torch.Generator().manual_seed(n)).items()}
        return TransitionBatch(
            observations=sampled["observations"],
            actions=sampled["actions"],
            rewards=sampled["rewards"],
            next_observations=sampled["next_observations"],
            terminated=sampled["terminated"] > 0.5,
            truncated=np.zeros(n, dtype=bool),  # the buffer does not keep it (DQN ignores it)
            episode_ids=np.full(n, -1),  # nor which episode a row came from
            env_ids=np.zeros(n),
        )

    def set_collecting(self, on: bool) -> None:
        """Start or stop keeping the rows train_iteration collects."""
        self.collected = [] if on else None

    def take_collected(self) -> TransitionBatch:
        """The rows kept since the last call, slot by slot so each episode's rows are in step order."""
        kept, self.collected = self.collected or [], ([] if self.collected is not None else None)
        if not kept:
            return TransitionBatch.empty(
                TransitionSchema.for_spaces(self.observation_space, self.envs.single_action_space)
            )
        steps = TransitionBatch.concatenate(kept)
        return steps.take(np.argsort(steps.env_ids, kind="stable"))

    def _update(self) -> float:
        """One gradient step of the Huber TD error on a minibatch; returns the loss."""
        sampled = self.buffer.sample(self.config["batch_size"], self.generator)
        batch = {name: values.to(self.device) for name, values in sampled.items()}
        for name in ("observations", "next_observations"):  # uint8 images too: the encoder scales
            batch[name] = batch[name].float()
        with torch.no_grad():
            next_q = self.target_net(batch["next_observations"]).max(dim=1).values
            target = batch["rewards"] + self.config["gamma"] * (1.0 - batch["terminated"]) * next_q
        q = self.q_net(batch["observations"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        loss = torch.nn.functional.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), 10.0)
        self.optimizer.step()
        self.updates += 1
        if self.updates % self.config["target_update_interval"] == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        return loss.item()

    @property
    def env_steps(self) -> int:
        """Env steps over the agent's life (saved and restored)."""
        return self.total_steps

    def parameters(self) -> dict[str, np.ndarray]:
        """What the optimizer updates (the Q-network; not the target)."""
        return optimizer_parameters([self.optimizer])

    def load_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Take another agent's Q-network weights (a follower in polyrl.cooperate)."""
        load_optimizer_parameters([self.optimizer], values)

    def replay_size(self) -> int:
        """Transitions in the replay buffer."""
        return len(self.buffer)

    # -- learning rate: the optimizer's, never a copy ---------------------------------------------
    def get_learning_rate(self) -> float:
        """The rate Adam steps with now."""
        return optimizer_learning_rate([self.optimizer])

    def set_learning_rate(self, value: float) -> None:
        """Write the rate into Adam's param_groups: the next step uses it."""
        set_optimizer_learning_rate([self.optimizer], value)

    # -- persistence: nothing pickled ----------------------------------------------------------
    def save(self, directory: Path) -> None:
        """State dicts (torch.save, loadable with weights_only), the buffer, counters, RNG states."""
        networks = {
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        torch.save(networks, directory / NETWORKS_FILE)
        self.buffer.save(directory / REPLAY_FILE)
        np.save(directory / RNG_FILE, self.generator.get_state().numpy())
        state = {
            "env_steps": self.total_steps,
            "native_steps": self.native_steps,
            "updates": self.updates,
            "numpy_rng": self.rng.bit_generator.state,
        }
        (directory / STATE_FILE).write_text(json.dumps(state))

    # -- introspection ---------------------------------------------------------------------------
    def effective_hyperparameters(self) -> EffectiveHyperparameters:
        """Read back from the objects that use them: the optimizer and the network's layers."""
        hidden, activation = describe_layers(
            cast(torch.nn.Module, self.q_net.body).modules()
        )  # after the encoder
        return EffectiveHyperparameters(
            learning_rate=optimizer_learning_rate([self.optimizer]),
            gamma=self.config["gamma"],
            hidden=hidden,
            activation=activation,
            n_envs=self.envs.num_envs,
            batch_size=self.config["batch_size"],
            iteration_steps=self.iteration_steps,
            device=str(next(self.q_net.parameters()).device),
            encoder=describe_encoder(self.q_net, self.observation_space),
            native={k: self.config[k] for k in (*list(DEFAULTS)[4:], *OPTIONS)},  # the DQN-specific ones
        )

    def native(self) -> torch.nn.Module:
        """The Q-network."""
        return self.q_net

    def close(self) -> None:
        """Close the vector env."""
        self.envs.close()
