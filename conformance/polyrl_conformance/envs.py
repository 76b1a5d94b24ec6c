"""The environments the suite runs on: five classic-control ids plus one environment of its own.

The suite's own environment is built through a factory (`make_custom_env`), not a registered
Gymnasium id, and its spaces have shapes and bounds no classic environment has (a 7-dim Box
or a Dict observation; 5 discrete actions or a 2-dim Box action with asymmetric bounds), so a
backend cannot pass by special-casing well-known ids or assuming actions in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

CUSTOM_FACTORY = "polyrl_conformance.envs:make_custom_env"
CUSTOM_MAX_STEPS = 25
#: Observation kinds of the suite's env: a vector, a Dict of vectors, a 12x12x3 uint8 image
#: (point, goal and time planes) and a Discrete grid cell of the point (the goal unobserved).
OBSERVATION_KINDS = ("box", "dict", "image", "discrete")
IMAGE_SIDE = 12
GRID_CELLS = 9
#: (raw return, length) of every episode that ended in an env built with `episode_log=NAME`, under
#: NAME: what the env itself paid out, whatever wrappers (normalisation) sit between it and a
#: backend. Only envs in this process write here (the normalize check's envs always are).
EPISODE_LOGS: dict[str, list[tuple[float, int]]] = {}

#: The force each of the 5 discrete actions applies: none, +x, -x, +y, -y.
_DISCRETE_FORCES = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float32)


def _force_box() -> spaces.Box:
    return spaces.Box(
        low=np.array([-1.0, 0.0], dtype=np.float32),
        high=np.array([1.0, 2.0], dtype=np.float32),
        dtype=np.float32,
    )


class PointGoalEnv(gym.Env):
    """A point mass pushed towards a goal on a plane; episodes last at most 25 steps.

    Observation: position (2), velocity (2), goal (2) and the fraction of the episode elapsed
    (1) — as one Box of shape (7,), or as a Dict {"body": (4,), "goal": (3,)}. Action: one of 5
    pushes (Discrete(5)) or a force in Box(low=[-1, 0], high=[1, 2]) whose y part is shifted by
    -1, so the space is asymmetric but every direction is reachable. Reward: minus the distance
    to the goal; the episode terminates within 0.1 of it and is truncated after 25 steps.
    action="tuple" (a Tuple of both action spaces) exists only to probe the mismatch error.

    `episode_log=NAME` appends (return, length) of every episode that ends to EPISODE_LOGS[NAME].

    `fixed_horizon=H` makes the episodes of the resume checks: the same start and goal at every
    reset (whatever the seed), no early termination, and exactly H steps. With H equal to an
    iteration's steps, every iteration ends an episode, so an agent loaded from a checkpoint
    and one that kept running see the same observations and the checks can compare them.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        action: Literal["discrete", "box", "tuple"] = "discrete",
        observation: Literal["box", "dict", "image", "discrete"] = "box",
        render_mode: str | None = None,
        fixed_horizon: int | None = None,
        episode_log: str | None = None,
    ) -> None:
        if fixed_horizon is not None and fixed_horizon < 1:
            raise ValueError(f"fixed_horizon must be >= 1 or None, got {fixed_horizon}")
        self.fixed_horizon = fixed_horizon
        if action not in ("discrete", "box", "tuple") or observation not in OBSERVATION_KINDS:
            raise ValueError(
                f"action must be discrete|box|tuple and observation one of {OBSERVATION_KINDS}, "
                f"got {action}, {observation}"
            )
        self.action_kind = action
        self.observation_kind = observation
        self.render_mode = render_mode
        self.episode_log = episode_log
        if action == "discrete":
            self.action_space: spaces.Space = spaces.Discrete(5)
        else:
            self.action_space = _force_box()
        if action == "tuple":
            # Only a probe for the space-mismatch check: no backend is expected to support it.
            self.action_space = spaces.Tuple((spaces.Discrete(5), _force_box()))
        if observation == "box":
            self.observation_space: spaces.Space = spaces.Box(-5.0, 5.0, shape=(7,), dtype=np.float32)
        elif observation == "image":
            self.observation_space = spaces.Box(0, 255, shape=(IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
        elif observation == "discrete":
            self.observation_space = spaces.Discrete(GRID_CELLS**2)
        else:
            self.observation_space = spaces.Dict(
                {
                    "body": spaces.Box(-5.0, 5.0, shape=(4,), dtype=np.float32),
                    "goal": spaces.Box(-5.0, 5.0, shape=(3,), dtype=np.float32),
                }
            )
        self._position = np.zeros(2, dtype=np.float32)
        self._velocity = np.zeros(2, dtype=np.float32)
        self._goal = np.zeros(2, dtype=np.float32)
        self._steps = 0
        self._return = 0.0

    @property
    def _max_steps(self) -> int:
        return self.fixed_horizon or CUSTOM_MAX_STEPS

    def _cell(self, point: np.ndarray, cells: int) -> tuple[int, int]:
        """(row, column) of a point of the plane [-4, 4]^2 on a cells x cells grid."""
        col = int(np.clip((point[0] + 4.0) / 8.0 * cells, 0, cells - 1))
        row = int(np.clip((4.0 - point[1]) / 8.0 * cells, 0, cells - 1))
        return row, col

    def _observation(self) -> Any:
        elapsed = np.array([self._steps / self._max_steps], dtype=np.float32)
        if self.observation_kind == "image":
            # Channel 0: the point, 1: the goal, 2: the time elapsed (a uniform plane).
            image = np.zeros((IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
            image[(*self._cell(self._position, IMAGE_SIDE), 0)] = 255
            image[(*self._cell(self._goal, IMAGE_SIDE), 1)] = 255
            image[:, :, 2] = int(255 * elapsed[0])
            return image
        if self.observation_kind == "discrete":
            row, col = self._cell(self._position, GRID_CELLS)
            return row * GRID_CELLS + col
        if self.observation_kind == "dict":
            return {
                "body": np.concatenate([self._position, self._velocity]).astype(np.float32),
                "goal": np.concatenate([self._goal, elapsed]).astype(np.float32),
            }
        return np.concatenate([self._position, self._velocity, self._goal, elapsed]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Start at a random point with a random goal."""
        super().reset(seed=seed)
        if self.fixed_horizon is not None:
            self._position = np.array([-1.5, 1.0], dtype=np.float32)
            self._goal = np.array([1.5, -1.0], dtype=np.float32)
        else:
            self._position = self.np_random.uniform(-2.0, 2.0, size=2).astype(np.float32)
            self._goal = self.np_random.uniform(-2.0, 2.0, size=2).astype(np.float32)
        self._velocity = np.zeros(2, dtype=np.float32)
        self._steps = 0
        self._return = 0.0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Apply the push, move, and score minus the distance to the goal."""
        checked = np.asarray(action, dtype=np.float32) if self.action_kind == "box" else action
        if not self.action_space.contains(checked):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        if self.action_kind == "discrete":
            force = _DISCRETE_FORCES[int(action)]
        elif self.action_kind == "box":
            force = np.asarray(action, dtype=np.float32) - np.array([0.0, 1.0], dtype=np.float32)
        else:
            force = _DISCRETE_FORCES[int(action[0])] + np.asarray(action[1], dtype=np.float32) - 1.0
        self._velocity = np.clip(0.8 * self._velocity + 0.2 * force, -1.0, 1.0).astype(np.float32)
        self._position = np.clip(self._position + 0.2 * self._velocity, -4.0, 4.0).astype(np.float32)
        self._steps += 1
        distance = float(np.linalg.norm(self._position - self._goal))
        terminated = distance < 0.1 and self.fixed_horizon is None
        truncated = not terminated and self._steps >= self._max_steps
        self._return += -distance
        if (terminated or truncated) and self.episode_log is not None:
            EPISODE_LOGS.setdefault(self.episode_log, []).append((self._return, self._steps))
        return self._observation(), -distance, terminated, truncated, {}

    # gymnasium types render() with a TypeVar bound to nothing (RenderFrame), which no concrete type matches.
    def render(self) -> np.ndarray | None:  # type: ignore[override]  # gymnasium: an unbound TypeVar return
        """A tiny picture: the point in white, the goal in red."""
        if self.render_mode != "rgb_array":
            return None
        frame = np.zeros((64, 64, 3), dtype=np.uint8)
        for (x, y), colour in ((self._goal, (255, 0, 0)), (self._position, (255, 255, 255))):
            col, row = int((x + 4) / 8 * 63), int((4 - y) / 8 * 63)
            frame[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = colour
        return frame


def make_custom_env(
    action: Literal["discrete", "box", "tuple"] = "discrete",
    observation: Literal["box", "dict", "image", "discrete"] = "box",
    render_mode: str | None = None,
    fixed_horizon: int | None = None,
    episode_log: str | None = None,
) -> gym.Env:
    """The suite's own environment (a factory, deliberately not a registered Gymnasium id)."""
    return PointGoalEnv(
        action=action,
        observation=observation,
        render_mode=render_mode,
        fixed_horizon=fixed_horizon,
        episode_log=episode_log,
    )


@dataclass(frozen=True)
class ConformanceEnv:
    """One environment of the suite: a short key for test ids and how to build it."""

    key: str
    gym_id: str | None = None
    kwargs: tuple[tuple[str, str], ...] = ()

    def spec_value(self) -> Any:
        """The value of AgentSpec.env: the id, or the factory document."""
        if self.gym_id is not None:
            return self.gym_id
        return {"factory": CUSTOM_FACTORY, "kwargs": dict(self.kwargs)}


def _custom(action: str, observation: str) -> ConformanceEnv:
    return ConformanceEnv(
        key=f"custom-{observation}obs-{action}",
        kwargs=(("action", action), ("observation", observation)),
    )


#: Every environment, in the order the suite tries them. The suite's own environment comes
#: first, so the algorithm-level checks (training, play, save/load, seeding) run on it
#: whenever the algorithm's spaces fit it: it is short (25 steps) and no backend knows it.
ENVIRONMENTS: tuple[ConformanceEnv, ...] = (
    _custom("discrete", "box"),
    _custom("box", "box"),
    ConformanceEnv("CartPole-v1", "CartPole-v1"),
    ConformanceEnv("Acrobot-v1", "Acrobot-v1"),
    ConformanceEnv("MountainCar-v0", "MountainCar-v0"),
    ConformanceEnv("Pendulum-v1", "Pendulum-v1"),
    ConformanceEnv("MountainCarContinuous-v0", "MountainCarContinuous-v0"),
    _custom("discrete", "dict"),
    _custom("box", "dict"),
)


#: Only used to check the space-mismatch error: a Tuple action space no algorithm is asked to
#: handle (an algorithm that declares "tuple" actions simply does not get this probe).
MISMATCH_PROBE = _custom("tuple", "box")
