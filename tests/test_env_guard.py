"""The env guard: typed errors for an env that raises or returns NaN/infinity, the same on every backend.

The unit tests drive `EnvGuard` directly on small envs. The backend tests train PPO and DQN on
CartPole that turns bad after some updates happened, and check that every backend raises the same
error type with the same message parts, that the agent's parameters are still finite, and that it
saves and loads.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import re
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import polyrl
import pytest
from gymnasium import spaces
from polyrl import Agent, AgentSpec
from polyrl.backend import EnvSource
from polyrl.env_guard import (
    ERROR_INFO_KEY,
    EnvGuard,
    error_from_record,
    error_record,
    observation_check,
    raise_delivered,
)
from polyrl.errors import EnvStepError, NonFiniteDataError

NAN, INF = float("nan"), float("inf")


class Scripted(gym.Env):
    """An env that returns the given observations and rewards, or raises what it is given."""

    def __init__(self, space: spaces.Space, observations: list, rewards: list | None = None) -> None:
        self.observation_space = space
        self.action_space = spaces.Discrete(2)
        self.observations = observations
        self.rewards = rewards or [1.0] * len(observations)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self._next(self.observations[0]), {}

    def step(self, action):
        self.t += 1
        return self._next(self.observations[self.t]), self._next(self.rewards[self.t]), False, False, {}

    @staticmethod
    def _next(value):
        if isinstance(value, BaseException):
            raise value
        return value


BOX = spaces.Box(-10, 10, (3,), np.float32)


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def guarded(env: gym.Env, **options) -> EnvGuard:
    return EnvGuard(env, "my.envs:make", **options)


# -- non-finite data -------------------------------------------------------------------------
@pytest.mark.parametrize("reward", [NAN, INF, -INF, np.float32(NAN)])
def test_a_non_finite_reward_names_the_env_the_step_and_the_value(reward):
    env = guarded(Scripted(BOX, [vec(0, 0, 0)] * 4, [0.0, 1.0, 1.0, reward]))
    env.reset()
    env.step(0)
    env.step(0)
    with pytest.raises(NonFiniteDataError) as raised:
        env.step(0)
    error = raised.value
    assert (error.env, error.where, error.step, error.episode, error.what) == (
        "my.envs:make",
        "step",
        3,
        1,
        "reward",
    )
    assert error.values == str(reward) and error.key is None
    message = str(error)
    assert (
        f"'my.envs:make' returned a non-finite reward in step() at step 3 of episode 1: {reward}" in message
    )
    assert "check_finite=False" in message and "nan_to_num" in message
    assert isinstance(error, EnvStepError | polyrl.PolyrlError | ValueError)


def test_a_non_finite_box_observation_names_the_values_and_their_indices():
    env = guarded(Scripted(BOX, [vec(0, 0, 0), vec(1, NAN, -INF)]))
    env.reset()
    with pytest.raises(NonFiniteDataError) as raised:
        env.step(0)
    error = raised.value
    assert (error.what, error.key, error.step) == ("observation", None, 1)
    assert error.values == "nan at index (1,), -inf at index (2,) (of 3 values)"
    assert "returned a non-finite observation in step() at step 1 of episode 1: observation: nan at" in str(
        error
    )


def test_a_non_finite_observation_from_reset_is_step_zero_of_the_next_episode():
    env = guarded(Scripted(BOX, [vec(NAN, 0, 0)]))
    with pytest.raises(NonFiniteDataError, match=r"in reset\(\) at step 0 of episode 1"):
        env.reset()
    with pytest.raises(NonFiniteDataError, match=r"in reset\(\) at step 0 of episode 2"):
        env.reset()


def test_a_dict_observation_names_the_key_and_skips_integer_leaves():
    space = spaces.Dict(
        {
            "count": spaces.Discrete(5),
            "pos": spaces.Box(-1, 1, (2,), np.float64),
            "frame": spaces.Box(0, 255, (2, 2), np.uint8),
        }
    )
    frame = np.zeros((2, 2), np.uint8)
    good = {"count": 1, "pos": np.zeros(2), "frame": frame}
    bad = {"count": 1, "pos": np.array([0.5, NAN]), "frame": frame}
    env = guarded(Scripted(space, [good, good, bad]))
    env.reset()
    env.step(0)
    with pytest.raises(NonFiniteDataError) as raised:
        env.step(0)
    assert (raised.value.key, raised.value.values) == ("pos", "nan at index (1,) (of 2 values)")
    assert "observation['pos']: nan at index (1,)" in str(raised.value)


def test_nested_and_tuple_observations_name_the_path():
    space = spaces.Tuple((spaces.Discrete(2), spaces.Dict({"arm": spaces.Box(-1, 1, (40,), np.float32)})))
    arm = np.zeros(40, np.float32)
    bad_arm = arm.copy()
    bad_arm[39] = INF
    env = guarded(Scripted(space, [(0, {"arm": arm}), (0, {"arm": bad_arm})]))
    env.reset()
    with pytest.raises(NonFiniteDataError) as raised:
        env.step(0)
    assert raised.value.key == "1.arm" and "observation[1]['arm']: inf at index (39,)" in str(raised.value)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(3),
        spaces.MultiDiscrete([2, 3]),
        spaces.MultiBinary(4),
        spaces.Box(0, 255, (8, 8, 3), np.uint8),
        spaces.Box(-5, 5, (3,), np.int64),
        spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(0, 1, (2,), np.int32)}),
    ],
)
def test_integer_bool_and_image_observations_are_not_checked(space):
    assert observation_check(space) is None


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_large_finite_values_whose_sum_overflows_are_not_an_error():
    big = np.finfo(np.float64).max
    space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
    env = guarded(Scripted(space, [np.array([big, big, big])] * 2))
    env.reset()
    env.step(0)
    big32 = np.finfo(np.float32).max
    grid = spaces.Box(-np.inf, np.inf, (50, 50), np.float32)
    env = guarded(Scripted(grid, [np.full((50, 50), big32, np.float32)] * 2))
    env.reset()
    env.step(0)


def test_a_large_array_observation_is_checked_too():
    grid = spaces.Box(-1, 1, (50, 50), np.float32)
    bad = np.zeros((50, 50), np.float32)
    bad[7, 3] = NAN
    env = guarded(Scripted(grid, [np.zeros((50, 50), np.float32), bad]))
    env.reset()
    with pytest.raises(NonFiniteDataError, match=r"nan at index \(7, 3\) \(of 2500 values\)"):
        env.step(0)


def test_the_flag_off_lets_non_finite_data_through():
    env = guarded(Scripted(BOX, [vec(NAN, 0, 0), vec(INF, 0, 0)], [0.0, NAN]), check_finite=False)
    obs, _ = env.reset()
    obs, reward, *_ = env.step(0)
    assert np.isinf(obs[0]) and math.isnan(reward)


def test_the_spec_flag_reaches_the_envs_and_defaults_to_on(tmp_path):
    assert AgentSpec().check_finite is True
    source = EnvSource.from_spec(AgentSpec(env=faulty_cartpole, env_kwargs={"at": 1}, check_finite=False))
    env = source.make()
    env.reset(seed=0)
    assert math.isnan(env.step(0)[1])
    with pytest.raises(NonFiniteDataError):
        checked = EnvSource.from_spec(AgentSpec(env=faulty_cartpole, env_kwargs={"at": 1})).make()
        checked.reset(seed=0)
        checked.step(0)


# -- exceptions ------------------------------------------------------------------------------
def test_an_exception_of_step_becomes_an_env_step_error_chained_to_the_original():
    original = ValueError("the pole broke")
    env = guarded(Scripted(BOX, [vec(0, 0, 0), vec(0, 0, 0), original]))
    env.reset()
    env.step(0)
    with pytest.raises(EnvStepError) as raised:
        env.step(0)
    error = raised.value
    assert type(error) is EnvStepError and error.__cause__ is original
    assert (error.where, error.step, error.error_type, error.error_text) == (
        "step",
        2,
        "ValueError",
        "the pole broke",
    )
    assert "'my.envs:make' raised in step() at step 2 of episode 1: ValueError: the pole broke" in str(error)
    assert isinstance(error, polyrl.PolyrlError | RuntimeError)


def test_an_exception_of_reset_is_wrapped_even_with_the_check_off():
    original = OSError("simulator not running")
    env = guarded(Scripted(BOX, [original]), check_finite=False)
    with pytest.raises(EnvStepError, match=r"raised in reset\(\) at step 0 of episode 1: OSError") as raised:
        env.reset()
    assert raised.value.__cause__ is original


@pytest.mark.parametrize("passing", [KeyboardInterrupt(), polyrl.errors.ConfigurationError("a polyrl error")])
def test_keyboard_interrupts_and_polyrl_errors_pass_unchanged(passing):
    env = guarded(Scripted(BOX, [vec(0, 0, 0), passing]))
    env.reset()
    with pytest.raises(type(passing)) as raised:
        env.step(0)
    assert raised.value is passing


def test_errors_survive_pickling_and_json_records():
    env = guarded(Scripted(BOX, [vec(0, 0, 0), vec(NAN, 0, 0)]))
    env.reset()
    with pytest.raises(NonFiniteDataError) as raised:
        env.step(0)
    for copy in (pickle.loads(pickle.dumps(raised.value)), error_from_record(error_record(raised.value))):
        assert type(copy) is NonFiniteDataError and str(copy) == str(raised.value)
        assert vars(copy) == vars(raised.value)


def test_a_delivering_guard_ends_the_episode_and_the_parent_raises_its_error():
    env = guarded(Scripted(BOX, [vec(0, 0, 0), RuntimeError("lost")]), deliver_errors=True)
    env.reset()
    obs, reward, terminated, truncated, info = env.step(0)
    assert BOX.contains(obs) and (reward, terminated, truncated) == (0.0, True, False)
    with pytest.raises(EnvStepError, match="RuntimeError: lost"):
        raise_delivered([{}, info])
    raise_delivered([{}, {"other": 1}])  # nothing delivered: nothing raised


def test_the_on_error_hook_sees_the_error_before_it_is_raised():
    seen = []
    env = guarded(Scripted(BOX, [vec(0, 0, 0)] * 2, [0.0, NAN]), on_error=seen.append)
    env.reset()
    with pytest.raises(NonFiniteDataError) as raised:
        env.step(0)
    assert seen == [raised.value]
    assert ERROR_INFO_KEY in guarded(Scripted(BOX, [vec(NAN, 0, 0)]), deliver_errors=True).reset()[1]


def test_reset_passes_on_only_the_keywords_given():
    class OldStyle(Scripted):
        def reset(self, seed=None):  # no `options`: fine for the libraries, so for the guard too
            return super().reset(seed=seed)

    env = guarded(OldStyle(BOX, [vec(0, 0, 0)]))
    env.reset(seed=3)
    env.reset()


def test_an_unguarded_source_builds_the_bare_env():
    assert not isinstance(EnvSource("CartPole-v1", guard=False).make(), EnvGuard)
    assert isinstance(EnvSource("CartPole-v1").make(), EnvGuard)


# -- on every backend ------------------------------------------------------------------------
#: Where the CartPole below turns bad: after the first two iterations (128 or 100 env steps) updated.
BAD_STEP = 300


class _Faulty(gym.Wrapper):
    """CartPole that misbehaves at its `at`-th step (counted over episodes)."""

    def __init__(self, env: gym.Env, at: int, fault: str) -> None:
        super().__init__(env)
        self.at, self.fault, self.steps = at, fault, 0

    def step(self, action):
        self.steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.steps == self.at:
            if self.fault == "reward":
                reward = NAN
            elif self.fault == "observation":
                obs = obs.copy()
                obs[2] = INF
            else:
                raise ValueError(f"the pole broke at step {self.at}")
        return obs, reward, terminated, truncated, info


def faulty_cartpole(at: int = BAD_STEP, fault: str = "reward") -> gym.Env:
    """A factory env (importable, so subprocess workers can build it)."""
    return _Faulty(gym.make("CartPole-v1"), at, fault)


def _installed(backend: str) -> bool:
    module = {"sb3": "stable_baselines3", "tianshou": "tianshou", "rllib": "ray.rllib"}[backend]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def on(backend: str, *values: object) -> object:
    """A parameter set for a test on `backend`, skipped where its library is not installed."""
    missing = pytest.mark.skipif(not _installed(backend), reason=f"{backend} is not installed")
    return pytest.param(backend, *values, marks=missing, id="-".join(map(str, (backend, *values))))


def backends(*names: str) -> list:
    return [on(name) for name in names]


def build(backend: str, algorithm: str, fault: str, **fields) -> Agent:
    tiny = polyrl.registry().backend(backend).conformance_overrides[algorithm]
    return Agent(
        backend=backend, algorithm=algorithm, env=faulty_cartpole, env_kwargs={"fault": fault}, seed=0,
        preset="none", **tiny, **fields,
    )  # fmt: skip


def train_into_the_fault(agent: Agent, kind: type[EnvStepError]) -> EnvStepError:
    """Train until the env fails; the error, after checking what every backend must give."""
    with pytest.raises(kind) as raised:
        agent.train(iterations=10)
    assert type(raised.value) is kind  # the same type on every backend, not a subclass of its own
    assert agent.iterations >= 2 and agent.env_steps < BAD_STEP  # updates happened, then it stopped
    assert all(np.isfinite(value).all() for value in agent.parameters().values())
    return raised.value


def assert_saves_and_loads(agent: Agent, path) -> None:
    agent.save(path)
    saved = agent.parameters()
    agent.close()
    loaded = Agent.load(path, env=faulty_cartpole)
    try:
        assert loaded.parameters().keys() == saved.keys()
        assert all(np.array_equal(loaded.parameters()[k], v) for k, v in saved.items())
        obs, _ = gym.make("CartPole-v1").reset(seed=0)
        assert loaded.action_space.contains(loaded.act(obs))
    finally:
        loaded.close()


@pytest.mark.parametrize("backend", backends("sb3", "tianshou", "rllib"))
@pytest.mark.parametrize(("algorithm", "fault"), [("ppo", "reward"), ("dqn", "observation")])
def test_non_finite_data_stops_training_with_the_same_error_and_a_finite_agent(
    backend, algorithm, fault, tmp_path
):
    agent = build(backend, algorithm, fault)
    try:
        error = train_into_the_fault(agent, NonFiniteDataError)
    except BaseException:
        agent.close()
        raise
    assert (error.env, error.where, error.what) == ("test_env_guard:faulty_cartpole", "step", fault)
    message = str(error)
    assert f"'test_env_guard:faulty_cartpole' returned a non-finite {fault} in step() at step" in message
    assert ("inf at index (2,)" if fault == "observation" else ": nan.") in message
    assert "last finite parameters" in message and "check_finite=False" in message
    assert_saves_and_loads(agent, tmp_path / "agent")


@pytest.mark.parametrize("backend", backends("sb3", "tianshou", "rllib"))
def test_an_env_that_raises_stops_training_with_the_same_error(backend, tmp_path):
    agent = build(backend, "ppo", "raise")
    try:
        error = train_into_the_fault(agent, EnvStepError)
    except BaseException:
        agent.close()
        raise
    assert isinstance(error.__cause__, ValueError)  # in this process: chained to the env's own error
    assert (error.error_type, error.error_text) == ("ValueError", f"the pole broke at step {BAD_STEP}")
    assert "raised in step() at step" in str(error)
    assert f"ValueError: the pole broke at step {BAD_STEP}" in str(error)
    assert_saves_and_loads(agent, tmp_path / "agent")


@pytest.mark.parametrize(("backend", "fault"), [on("sb3", "raise"), on("tianshou", "observation")])
def test_subprocess_envs_hand_the_same_error_back(backend, fault, tmp_path):
    """The workers' guards deliver the error instead of dying; the original cannot be chained."""
    agent = build(backend, "ppo", fault, n_envs=2, backend_options={"vec_env": "subproc"})
    try:
        kind = NonFiniteDataError if fault == "observation" else EnvStepError
        with pytest.raises(kind) as raised:
            agent.train(iterations=10)
        assert type(raised.value) is kind and raised.value.env == "test_env_guard:faulty_cartpole"
        if fault == "raise":
            assert f"ValueError: the pole broke at step {BAD_STEP}" in str(raised.value)
        assert all(np.isfinite(value).all() for value in agent.parameters().values())
    finally:
        agent.close()  # the workers are alive: closing works


@pytest.mark.parametrize("backend", backends("rllib"))
def test_a_remote_rllib_env_runner_gives_the_same_error(backend):
    """RLlib ends a remote env runner on an exception; the guard's report still gets the type out."""
    import ray.cloudpickle

    # This test module is not importable in Ray's worker processes: ship the factory by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        agent = build(
            backend, "ppo", "reward", backend_options={"num_env_runners": 1, "num_cpus_per_env_runner": 0.5}
        )
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    try:
        with pytest.raises(NonFiniteDataError) as raised:
            agent.train(iterations=10)
        assert type(raised.value) is NonFiniteDataError and raised.value.what == "reward"
        assert "returned a non-finite reward in step() at step" in str(raised.value)
        assert all(np.isfinite(value).all() for value in agent.parameters().values())
    finally:
        agent.close()


@pytest.mark.parametrize("backend", backends("sb3"))
def test_the_readme_example_runs_as_it_says(backend, tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("### A failing environment", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "__main__"})
    assert re.fullmatch(r"__main__:flaky_cartpole step \d+ reward nan", capsys.readouterr().out.strip())
    assert (tmp_path / "runs" / "before-nan" / "polyrl.json").is_file()
