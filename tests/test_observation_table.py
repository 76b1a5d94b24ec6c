"""Issue 17's table, row by row, on every backend: the environments a new user brings.

Each row trains two tiny iterations, saves, loads and must act exactly as before the save on
the same observations (or fail at creation with the advice the row expects). Slow (Atari and
CarRacing frames through a CNN, three libraries): run with `pytest -m slow tests/test_observation_table.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polyrl
import pytest
from polyrl.errors import UnsupportedSpaceError

pytestmark = pytest.mark.slow

BACKENDS = ("sb3", "tianshou", "rllib")
#: (row id, env, wrappers, the package the env needs, expected encoder kind)
ROWS: list[tuple[str, str, list[Any], str | None, str]] = [
    ("pong-image", "ALE/Pong-v5", [], "ale_py", "cnn"),
    ("pong-atari-preset", "ALE/Pong-v5", ["atari"], "ale_py", "cnn"),
    ("carracing-image", "CarRacing-v3", [], "Box2D", "cnn"),
    ("minatar-breakout", "MinAtar/Breakout-v1", [], "minatar", "cnn"),
    ("frozenlake-discrete", "FrozenLake-v1", [], None, "mlp"),
    ("taxi-discrete", "Taxi-v3", [], None, "mlp"),
    ("blackjack-tuple", "Blackjack-v1", [], None, "mlp"),
    (
        "minigrid-image",
        "MiniGrid-Empty-5x5-v0",
        [{"kind": "filter_keys", "keys": ["image"]}],
        "minigrid",
        "cnn",
    ),
]


def tiny_spec(backend: str, env: str, wrappers: list[Any]) -> dict[str, Any]:
    overrides = polyrl.registry().backend(backend).conformance_overrides.get("ppo", {})
    return {**overrides, "backend": backend, "algorithm": "ppo", "env": env, "wrappers": wrappers, "seed": 0}


def observations(agent: polyrl.Agent, count: int = 8) -> list[Any]:
    env = agent.env_source.make(training=False)
    seen = [env.reset(seed=0)[0]]
    while len(seen) < count:
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        seen.append(env.reset()[0] if terminated or truncated else observation)
    env.close()
    return seen


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("row", "env", "wrappers", "package", "kind"), ROWS, ids=[r[0] for r in ROWS])
def test_the_row_trains_saves_loads_and_acts_the_same(
    backend, row, env, wrappers, package, kind, tmp_path
) -> None:
    pytest.importorskip({"sb3": "stable_baselines3", "tianshou": "tianshou", "rllib": "ray"}[backend])
    if package is not None:
        pytest.importorskip(package)
    agent = polyrl.Agent(tiny_spec(backend, env, wrappers))
    assert agent.effective_hyperparameters().encoder.kind == kind
    agent.train(iterations=2)
    seen = observations(agent)
    before = [agent.act(o) for o in seen]
    agent.save(tmp_path / "agent")
    agent.close()
    loaded = polyrl.Agent.load(tmp_path / "agent")
    after = [loaded.act(o) for o in seen]
    loaded.close()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_minigrid_without_wrappers_fails_at_creation_naming_filter_keys(backend) -> None:
    pytest.importorskip("minigrid")
    with pytest.raises(UnsupportedSpaceError, match="filter_keys"):
        polyrl.Agent(tiny_spec(backend, "MiniGrid-Empty-5x5-v0", []))
