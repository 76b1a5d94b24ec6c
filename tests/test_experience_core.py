"""Experience in and out of agents, in the core, on a NumPy fake backend (no RL library).

on_experience and ExperienceRecorder (out), Agent.add_experience / sample_experience and the
spec's `prefill` (in): every row accounted for, counters untouched, and the typed errors a user
meets with text that says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import polyrl
import pytest
from experience_backend import ExperienceDriver, ExperiencePlugin
from polyrl import Agent
from polyrl.callbacks import Callback, ExperienceRecorder
from polyrl.errors import CallbackError, ExperienceError, UnsupportedOptionError
from polyrl.experience import TransitionBatch
from polyrl.experience.datasets import read_experience, write_experience

STEPS = 50  # env steps per iteration: CartPole episodes end inside and across iterations


@pytest.fixture
def fakexp() -> Iterator[str]:
    """Register the experience fake backend for one test."""
    plugin = ExperiencePlugin()
    polyrl.registry().register(plugin, name="experience-plugin")
    try:
        yield "fakexp"
    finally:
        polyrl.registry().unregister(plugin)


def make(algorithm: str = "replay", env: str = "CartPole-v1", **fields: object) -> Agent:
    return Agent(backend="fakexp", algorithm=algorithm, env=env, seed=0, iteration_steps=STEPS, **fields)


def driver(agent: Agent) -> ExperienceDriver:
    found = agent._parts.driver  # the tests read the fake library's own state
    assert isinstance(found, ExperienceDriver)
    return found


class Spy(Callback):
    """Keeps every batch on_experience gets, and the order of the per-iteration hooks."""

    def __init__(self) -> None:
        self.batches: list[TransitionBatch] = []
        self.calls: list[str] = []

    def on_experience(self, batch: TransitionBatch) -> None:
        self.batches.append(batch)
        self.calls.append("on_experience")

    def on_iteration_end(self, record: object) -> None:
        self.calls.append("on_iteration_end")


def recorded(iterations: int = 3, algorithm: str = "linear", env: str = "CartPole-v1") -> TransitionBatch:
    """The transitions `iterations` iterations of a fresh agent collect, as one batch."""
    spy = Spy()
    with make(algorithm, env) as agent:
        agent.train(iterations=iterations, callbacks=[spy])
    return TransitionBatch.concatenate(spy.batches)


def rows_of(batch: TransitionBatch) -> set[bytes]:
    """Each row's (observation, action, reward, next observation, flags) as bytes, to find rows."""
    fields = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated")
    return {b"|".join(getattr(batch, name)[i].tobytes() for name in fields) for i in range(len(batch))}


def assert_same_rows(a: TransitionBatch, b: TransitionBatch) -> None:
    for name in ("observations", "actions", "rewards", "next_observations", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# -- out: on_experience and ExperienceRecorder -----------------------------------------------------


def test_on_experience_gets_every_collected_transition_in_step_order(fakexp):
    spy = Spy()
    with make() as agent:
        result = agent.train(iterations=4, callbacks=[spy])
        buffer = driver(agent).buffer
        switches = driver(agent).collecting
    assert spy.calls == ["on_experience", "on_iteration_end"] * 4
    assert [len(batch) for batch in spy.batches] == [r.iteration_env_steps for r in result.records]
    batch = TransitionBatch.concatenate(spy.batches)
    assert len(batch) == sum(r.iteration_env_steps for r in result.records) == result.run_env_steps == 200
    # One stream of steps: a row's next observation is the next row's observation, except where an
    # episode ended (the true final observation, then a new episode id), across iterations too.
    ended = batch.terminated | batch.truncated
    follows = np.all(batch.next_observations[:-1] == batch.observations[1:], axis=1)
    assert np.array_equal(follows, ~ended[:-1])
    assert np.array_equal(np.diff(batch.episode_ids), ended[:-1].astype(np.int64))
    assert int(ended.sum()) == agent.episodes > 2
    assert_same_rows(batch, buffer)  # what the (off-policy) learner stored, row for row
    assert switches is False  # collection is off again after train()


def test_training_without_on_experience_never_switches_collection_on(fakexp):
    with make() as agent:
        agent.train(iterations=2)
        assert driver(agent).collecting is False and driver(agent).collected == []


def test_on_experience_needs_an_algorithm_that_reports_what_it_collects(fakexp):
    with make("plain") as agent:
        with pytest.raises(UnsupportedOptionError) as caught:
            agent.train(iterations=1, callbacks=[Spy()])
        assert agent.iterations == 0 and agent.env_steps == 0
    message = str(caught.value)
    assert "fakexp/plain" in message and "'experience.collect'" in message
    assert "fakexp/linear" in message and "fakexp/replay" in message


def test_collection_is_switched_off_when_a_callback_fails(fakexp):
    class Fails(Callback):
        def on_experience(self, batch):
            raise RuntimeError("boom")

    with make() as agent:
        with pytest.raises(CallbackError, match="on_experience"):
            agent.train(iterations=3, callbacks=[Fails()])
        assert agent.iterations == 1 and driver(agent).collecting is False


def test_collection_follows_a_driver_that_a_callback_restored(fakexp, tmp_path):
    class RestoreAtTwo(Callback):
        def on_iteration_end(self, context, record):
            if record.iteration == 1:
                context.agent.save(tmp_path / "one")
            if record.iteration == 2:
                context.agent.restore(tmp_path / "one")

    spy = Spy()
    with make() as agent:
        first = driver(agent)
        agent.train(iterations=4, callbacks=[RestoreAtTwo(), spy])
        assert driver(agent) is not first and driver(agent).collecting is False
    assert [len(batch) for batch in spy.batches] == [STEPS] * 4


def test_experience_recorder_writes_the_batches_of_the_train_call(fakexp, tmp_path):
    target = tmp_path / "cartpole.npz"
    spy, recorder = Spy(), ExperienceRecorder(target)
    with make("linear") as agent:
        agent.train(iterations=3, callbacks=[recorder, spy])
    assert recorder.path is not None and recorder.path.resolve() == target.resolve()
    written = read_experience(target)
    assert len(written) == recorder.rows == 3 * STEPS
    expected = TransitionBatch.concatenate(spy.batches)
    for name, array in expected.arrays().items():
        np.testing.assert_array_equal(written.arrays()[name], array, err_msg=name)
    assert "CartPole-v1" in json.dumps(written.infos)


def test_experience_recorder_refuses_an_existing_target_before_training(fakexp, tmp_path):
    target = tmp_path / "data.npz"
    recorder = ExperienceRecorder(target)
    with make("linear") as agent:
        agent.train(iterations=1, callbacks=[recorder])
        with pytest.raises(CallbackError) as caught:
            agent.train(iterations=1, callbacks=[recorder])
        assert isinstance(caught.value.__cause__, ExperienceError)
        assert (
            "exists already; pass overwrite=True to ExperienceRecorder, or a new target per train() call"
            in (str(caught.value.__cause__))
        )
        assert agent.iterations == 1  # refused in on_train_begin: no iteration ran
        agent.train(iterations=2, callbacks=[ExperienceRecorder(target, overwrite=True)])
    assert len(read_experience(target)) == 2 * STEPS  # the latest call's rows only


def test_experience_recorder_every_iteration_keeps_what_a_failed_run_collected(fakexp, tmp_path):
    class FailsAtTwo(Callback):
        def on_iteration_end(self, context, record):
            if record.iteration == 2:
                raise RuntimeError("boom")

    target = tmp_path / "partial.npz"
    with make("linear") as agent, pytest.raises(CallbackError):
        agent.train(iterations=5, callbacks=[ExperienceRecorder(target, every_iteration=True), FailsAtTwo()])
    assert len(read_experience(target)) == 2 * STEPS


# -- in: add_experience, sample_experience, prefill ------------------------------------------------


def test_add_experience_adds_exactly_the_rows_and_leaves_the_counters(fakexp, tmp_path):
    batch = recorded()
    with make() as agent:
        assert agent.add_experience(batch) == len(batch) == 3 * STEPS
        assert agent.replay_size == len(batch)
        assert (agent.env_steps, agent.iterations, agent.episodes) == (0, 0, 0)
        assert_same_rows(driver(agent).buffer, batch)
        path = write_experience(batch, tmp_path / "again.npz")
        assert agent.add_experience(path) == len(batch)  # a dataset path works too
        assert agent.replay_size == 2 * len(batch)
        assert (agent.env_steps, agent.iterations) == (0, 0)


def test_sample_experience_draws_rows_of_the_buffer(fakexp):
    batch = recorded(iterations=1)
    with make() as agent:
        agent.add_experience(batch)
        sample = agent.sample_experience(200)
    assert len(sample) == 200
    assert rows_of(sample) <= rows_of(batch)
    assert len(rows_of(sample)) > 1


def test_sample_experience_of_an_empty_buffer_or_no_rows_is_refused(fakexp):
    with make() as agent:
        with pytest.raises(ExperienceError, match="empty"):
            agent.sample_experience(10)
        agent.add_experience(recorded(iterations=1))
        with pytest.raises(ExperienceError, match="> 0"):
            agent.sample_experience(0)


def test_add_experience_of_another_envs_transitions_names_the_difference(fakexp):
    pendulum = recorded(iterations=1, env="Pendulum-v1")
    with make() as agent:
        with pytest.raises(ExperienceError) as caught:
            agent.add_experience(pendulum)
        assert agent.replay_size == 0
    message = str(caught.value)
    assert "observation_shape: [3] where the agent has [4]" in message
    assert "action_shape: [1] where the agent has []" in message
    assert "same env" in message


def test_add_experience_refuses_actions_outside_the_action_space(fakexp):
    batch = recorded(iterations=1, env="Pendulum-v1")
    actions = batch.actions.copy()
    actions[7] = 3.5  # Pendulum's torque is in [-2, 2]
    with make(env="Pendulum-v1") as agent:
        with pytest.raises(ExperienceError) as caught:
            agent.add_experience(batch.model_copy(update={"actions": actions}))
        assert agent.replay_size == 0
        assert agent.add_experience(batch) == len(batch)  # the same rows within the bounds go in
    message = str(caught.value)
    assert "1 of the 50 actions lie outside" in message and "row 7, [3.5]" in message
    assert "np.clip" in message


def test_add_experience_refuses_a_discrete_action_the_env_does_not_have(fakexp):
    batch = recorded(iterations=1)
    actions = batch.actions.copy()
    actions[0] = 2  # CartPole has actions 0 and 1
    with make() as agent, pytest.raises(ExperienceError, match=r"row 0, 2\b"):
        agent.add_experience(batch.model_copy(update={"actions": actions}))


@pytest.mark.parametrize(
    ("normalize", "what"),
    [({"observations": True}, "observations"), ({"observations": False, "rewards": True}, "rewards")],
)
def test_add_experience_refuses_an_agent_that_normalises(fakexp, normalize, what):
    with make(normalize=normalize) as agent, pytest.raises(ExperienceError) as caught:
        agent.add_experience(recorded(iterations=1))
    message = str(caught.value)
    assert f"normalises its {what}" in message and "normalize=None" in message


def test_add_experience_on_an_on_policy_algorithm_names_those_that_take_it(fakexp):
    batch = recorded(iterations=1)
    with make("linear") as agent:
        for call in (lambda: agent.add_experience(batch), lambda: agent.sample_experience(5)):
            with pytest.raises(UnsupportedOptionError) as caught:
                call()
            message = str(caught.value)
            assert "fakexp/linear does not support" in message and "'experience.add'" in message
            assert "fakexp/replay" in message and "fakexp/plain" not in message


def test_add_experience_refuses_what_is_no_batch_or_dataset(fakexp):
    with make() as agent, pytest.raises(ExperienceError, match="TransitionBatch or the path"):
        agent.add_experience({"observations": []})  # type: ignore[arg-type]


def test_prefill_fills_a_new_agent_and_is_not_applied_again_on_load(fakexp, tmp_path):
    batch = recorded()
    dataset = write_experience(batch, tmp_path / "prefill.npz")
    with make(prefill=str(dataset)) as agent:
        assert agent.replay_size == len(batch) and agent.env_steps == 0
        assert_same_rows(driver(agent).buffer, batch)
        agent.train(iterations=1)
        size = agent.replay_size
        assert size == len(batch) + STEPS
        agent.save(tmp_path / "ckpt")
    with Agent.load(tmp_path / "ckpt") as loaded:
        assert loaded.spec.prefill == str(dataset)
        assert loaded.replay_size == size
        assert driver(loaded).added_calls == 0


def test_prefill_on_an_algorithm_without_a_buffer_is_refused_when_the_agent_is_built(fakexp, tmp_path):
    dataset = write_experience(recorded(iterations=1), tmp_path / "prefill.npz")
    with pytest.raises(UnsupportedOptionError, match=r"fakexp/linear[\s\S]*fakexp/replay"):
        make("linear", prefill=str(dataset))


def test_prefill_that_does_not_fit_is_refused_when_the_agent_is_built(fakexp, tmp_path):
    dataset = write_experience(recorded(iterations=1, env="Pendulum-v1"), tmp_path / "pendulum.npz")
    with pytest.raises(ExperienceError, match="observation_shape"):
        make(prefill=dataset)  # a Path is accepted too


def test_train_command_takes_prefill(fakexp, tmp_path):
    from polyrl.cli.app import app
    from typer.testing import CliRunner

    runner = CliRunner()
    help_text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output.split())
    assert "--prefill str" in help_text and "into the replay buffer" in help_text
    assert "docs/experience.md. [default: none (no prefill)]" in help_text
    assert "[default: backend's]" in help_text  # other unset fields still read as the backend's
    batch = recorded(iterations=1)
    dataset = write_experience(batch, tmp_path / "prefill.npz")
    out = tmp_path / "run"
    flags = ["--backend", "fakexp", "--algo", "replay", "--iterations", "1", "--iteration-steps", str(STEPS)]
    flags += ["--prefill", str(dataset), "--eval-episodes", "0", "--out", str(out), "--json"]
    result = runner.invoke(app, ["train", *flags], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Agent.load(out) as loaded:
        assert loaded.replay_size == len(batch) + STEPS


def test_add_experience_refuses_continuous_actions_for_whole_number_ones(fakexp):
    batch = recorded(iterations=1)
    actions = batch.actions.astype(np.float32)
    with make() as agent:
        assert agent.add_experience(batch.model_copy(update={"actions": actions})) == len(batch)
        actions[3] = 0.7
        with pytest.raises(ExperienceError, match="continuous actions"):
            agent.add_experience(batch.model_copy(update={"actions": actions}))
        assert agent.replay_size == len(batch)


def test_add_experience_of_no_rows_adds_nothing(fakexp):
    for env in ("CartPole-v1", "Pendulum-v1"):
        empty = recorded(iterations=1, env=env).take(np.arange(0))
        with make(env=env) as agent:
            assert agent.add_experience(empty) == 0
            assert agent.replay_size == 0 and driver(agent).added_calls == 0


def test_box_actions_of_one_value_per_row_fit_a_box_1_space(fakexp):
    batch = recorded(iterations=1, env="Pendulum-v1")
    flat = batch.model_copy(update={"actions": batch.actions[:, 0]})
    with make(env="Pendulum-v1") as agent:
        assert agent.add_experience(flat) == len(batch)
        assert_same_rows(driver(agent).buffer, batch)  # stored as (n, 1), the agent's shape
        wrapped = batch.model_copy(update={"actions": batch.actions[:, :, None]})  # (n, 1, 1)
        with pytest.raises(ExperienceError) as caught:
            agent.add_experience(wrapped)
        assert agent.replay_size == len(batch)
    message = str(caught.value)
    assert "action_shape: [1, 1] where the agent has [1]" in message
    assert "reshape them to (n, 1)" in message


def test_actions_of_another_size_are_refused_without_reshape_advice(fakexp):
    batch = recorded(iterations=1, env="Pendulum-v1")
    doubled = batch.model_copy(update={"actions": np.repeat(batch.actions, 2, axis=1)})
    with make(env="Pendulum-v1") as agent, pytest.raises(ExperienceError) as caught:
        agent.add_experience(doubled)
    message = str(caught.value)
    assert "action_shape: [2] where the agent has [1]" in message
    assert "reshape" not in message and "same env" in message


def test_a_dataset_that_does_not_fit_is_named_with_its_env(fakexp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_experience(recorded(iterations=1, env="Pendulum-v1"), "pendulum.npz", env_id="Pendulum-v1")
    with make() as agent, pytest.raises(ExperienceError) as caught:
        agent.add_experience("pendulum.npz")
    assert str(caught.value).startswith(
        "the dataset pendulum.npz (recorded on Pendulum-v1) does not fit this agent's spaces ("
    )
    with pytest.raises(ExperienceError, match=r"^the dataset pendulum.npz \(recorded on Pendulum-v1\)"):
        make(prefill="pendulum.npz")
    write_experience(recorded(iterations=1, env="Pendulum-v1"), "anonymous.npz")
    with make() as agent, pytest.raises(ExperienceError, match=r"^the dataset anonymous.npz does not fit"):
        agent.add_experience("anonymous.npz")
