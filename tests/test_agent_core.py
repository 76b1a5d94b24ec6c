"""The core-owned loop, callbacks, errors and act() on the fake backend (no RL library)."""

from __future__ import annotations

import numpy as np
import polyrl
import pytest
from fake_backend import CREATED
from polyrl import Agent, Callback, TrainConfig


def agent(backend: str, **fields) -> Agent:
    return Agent(backend=backend, algorithm="linear", env="CartPole-v1", seed=0, iteration_steps=50, **fields)


def test_unknown_backend_lists_installed_and_missing(fake_backend):
    with pytest.raises(polyrl.errors.UnknownBackendError) as info:
        Agent(backend="nope")
    message = str(info.value)
    assert "'nope'" in message and "'fake'" in message and "'sb3'" in message and "ghost" in message


def test_missing_library_names_the_install_command(fake_backend):
    with pytest.raises(polyrl.errors.BackendNotInstalledError, match=r"pip install 'polyrl\[ghost\]'"):
        Agent(backend="ghost", algorithm="ppo")


def test_unknown_algorithm_lists_the_backends_algorithms(fake_backend):
    with pytest.raises(polyrl.errors.UnknownAlgorithmError, match="discrete_only.*linear"):
        Agent(backend="fake", algorithm="dqn")


def test_space_mismatch_is_rejected_before_the_driver_is_built(fake_backend):
    CREATED.clear()
    with pytest.raises(polyrl.errors.UnsupportedSpaceError, match="box action space of Pendulum-v1"):
        Agent(backend="fake", algorithm="discrete_only", env="Pendulum-v1")
    assert CREATED == []


def test_callback_order_is_exact(fake_backend, recorder):
    result = agent(fake_backend).train(TrainConfig(iterations=3), callbacks=[recorder])
    assert recorder.calls == [
        "on_train_begin",
        *["on_iteration_begin", "on_iteration_end"] * 3,
        "on_train_end",
    ]
    assert [r.iteration for r in result.records] == [1, 2, 3]
    assert result.stop_reason == "iterations reached"


def test_callbacks_are_called_in_list_order(fake_backend):
    seen = []

    class Tag(Callback):
        def __init__(self, tag):
            self.tag = tag

        def on_iteration_end(self, record):
            seen.append(self.tag)

    agent(fake_backend).train(iterations=1, callbacks=[Tag("a"), Tag("b"), Tag("c")])
    assert seen == ["a", "b", "c"]


def test_total_steps_reached_with_less_than_one_iteration_overshoot(fake_backend):
    a = agent(fake_backend)
    result = a.train(total_steps=120)
    assert result.run_env_steps == 150 and a.env_steps == 150
    assert result.stop_reason == "total_steps reached"
    again = a.train(total_steps=50)
    assert again.records[0].iteration == 4 and again.env_steps == 200


def test_stop_flag_ends_training_after_that_iteration(fake_backend, recorder):
    class StopAtTwo(Callback):
        def on_iteration_end(self, context, record):
            if record.iteration == 2:
                context.stop("enough")

    result = agent(fake_backend).train(total_steps=10_000, callbacks=[StopAtTwo(), recorder])
    assert len(result.records) == 2 and result.stop_reason == "enough"
    assert recorder.calls[-1] == "on_train_end"


def test_callback_may_extend_the_schedule(fake_backend):
    class Extend(Callback):
        def on_iteration_end(self, context, record):
            if record.iteration == 1:
                context.config.iterations = 4

    assert len(agent(fake_backend).train(iterations=1, callbacks=[Extend()]).records) == 4


def test_learning_rate_set_by_a_callback_reaches_the_driver(fake_backend):
    class Halve(Callback):
        def on_iteration_begin(self, context, iteration):
            context.learning_rate = context.learning_rate / 2

    a = agent(fake_backend, learning_rate=0.04)
    result = a.train(iterations=2, callbacks=[Halve()])
    assert [r.learning_rate for r in result.records] == [0.02, 0.01]
    assert a._parts.driver.get_learning_rate() == 0.01


@pytest.mark.parametrize("value", [-1e-3, float("inf"), float("nan"), True, "0.1"])
def test_invalid_learning_rate_is_rejected(fake_backend, value):
    with pytest.raises(polyrl.errors.ConfigurationError, match="finite number >= 0"):
        agent(fake_backend).learning_rate = value


def test_a_learning_rate_of_zero_freezes_the_policy(fake_backend):
    frozen = agent(fake_backend)
    frozen.learning_rate = 0
    assert frozen.learning_rate == 0


def test_callback_exception_names_the_callback_and_keeps_the_agent_usable(fake_backend, tmp_path):
    class Broken(Callback):
        def on_iteration_end(self, record):
            if record.iteration == 2:
                raise RuntimeError("boom")

        def __repr__(self):
            return "Broken()"

    a = agent(fake_backend)
    with pytest.raises(
        polyrl.errors.CallbackError, match=r"Broken\(\) raised in on_iteration_end: RuntimeError: boom"
    ) as info:
        a.train(iterations=5, callbacks=[polyrl.Callback(), Broken()])
    assert info.value.hook == "on_iteration_end"
    assert len(info.value.result.records) == 2
    assert a.iterations == 2 and a.env_steps == 100
    a.save(tmp_path / "ck")
    assert Agent.load(tmp_path / "ck").iterations == 2
    assert a.train(iterations=1).records[0].iteration == 3


def test_records_use_the_common_vocabulary_and_are_finite(fake_backend):
    for record in agent(fake_backend).train(iterations=3).records:
        flat = record.flat()
        for name in polyrl.COMMON_METRICS:
            assert name in flat
            if flat[name] is not None:
                assert np.isfinite(flat[name])
        assert record.iteration_env_steps == 50


def test_play_hook_order_and_max_steps(fake_backend, recorder):
    result = agent(fake_backend).play(episodes=2, max_steps=3, callbacks=[recorder])
    one_episode = ["on_episode_begin", *["on_step_begin", "on_step_end"] * 3, "on_episode_end"]
    assert recorder.calls == ["on_play_begin", *one_episode * 2, "on_play_end"]
    assert [e.length for e in result.episodes] == [3, 3]
    assert all(e.truncated for e in result.episodes)
    assert result.total_steps == 6


def test_evaluate_is_deterministic_and_repeatable(fake_backend):
    a = agent(fake_backend)
    first, second = a.evaluate(episodes=3), a.evaluate(episodes=3)
    assert first.deterministic and first.return_mean == second.return_mean
    assert [e.episode_return for e in first.episodes] == [e.episode_return for e in second.episodes]


def test_eval_every_records_eval_metrics(fake_backend):
    result = agent(fake_backend).train(iterations=4, eval_every=2, eval_episodes=2)
    assert "eval_return_mean" in result.records[1].metrics
    assert "eval_return_mean" not in result.records[0].metrics
    assert [e["iteration"] for e in result.evaluations] == [2, 4]


def test_act_single_and_batch_shapes_and_types(fake_backend):
    a = agent(fake_backend)
    single = a.act(np.zeros(4, dtype=np.float32))
    assert isinstance(single, int) and a.action_space.contains(single)
    batch = a.act(np.zeros((5, 4), dtype=np.float32))
    assert batch.shape == (5,) and batch.dtype == np.int64
    box = Agent(backend="fake", algorithm="linear", env="Pendulum-v1", seed=0)
    action = box.act(np.ones(3, dtype=np.float32) * 100)
    assert action.shape == (1,) and action.dtype == np.float32 and box.action_space.contains(action)


def test_act_rejects_an_observation_of_the_wrong_shape(fake_backend):
    with pytest.raises(polyrl.errors.InvalidObservationError, match=r"\(3,\)"):
        agent(fake_backend).act(np.zeros(3))


def test_spec_and_fields_together_are_rejected(fake_backend):
    with pytest.raises(polyrl.errors.ConfigurationError, match="either a spec or keyword"):
        Agent(polyrl.AgentSpec(backend="fake", algorithm="linear"), seed=1)


class Integration:
    """An installed integration plugin: implements a lifecycle hook with @hookimpl."""

    def __init__(self):
        self.iterations = []

    @polyrl.backend.hookimpl
    def on_iteration_end(self, record):
        self.iterations.append(record.iteration)


def test_installed_integration_plugins_see_every_run(fake_backend):
    integration = Integration()
    polyrl.registry().register(integration, name="integration")
    try:
        agent(fake_backend).train(iterations=2)
    finally:
        polyrl.registry().unregister(integration)
    assert integration.iterations == [1, 2]


def test_api_call_hook_reports_driver_calls(fake_backend):
    calls = []

    class Log(Callback):
        def on_api_call(self, target, method, seconds):
            calls.append((target, method, seconds >= 0))

    agent(fake_backend).train(iterations=2, callbacks=[Log()])
    assert calls == [("driver", "train_iteration", True)] * 2
