"""Recording from play: play(record=...) and `polyrl record` write exactly the steps that were played.

A second play with the same seed, watched step by step by a callback, gives the rows the
recording must hold; each episode's rewards sum to the return play reported.
"""

from __future__ import annotations

import json

import numpy as np
import polyrl
import pytest
from polyrl.cli.app import app
from polyrl.errors import ExperienceError
from polyrl.experience import TransitionBatch, read_experience
from typer.testing import CliRunner


class StepLog(polyrl.Callback):
    """Every StepRecord of a play, as the rows a recording of it must hold."""

    def __init__(self) -> None:
        self.steps: list[polyrl.records.StepRecord] = []

    def on_step_end(self, context, step):
        self.steps.append(step)

    def rows(self) -> dict[str, np.ndarray]:
        return {
            "observations": np.stack([s.observation for s in self.steps]),
            "actions": np.stack([np.asarray(s.action) for s in self.steps]),
            "rewards": np.array([s.reward for s in self.steps], dtype=np.float32),
            "next_observations": np.stack([s.next_observation for s in self.steps]),
            "terminated": np.array([s.terminated for s in self.steps]),
            "truncated": np.array([s.truncated for s in self.steps]),
            "episode_ids": np.array([s.episode for s in self.steps], dtype=np.int64),
        }


def assert_recording_is_the_play(batch: TransitionBatch, log: StepLog, result: polyrl.PlayResult) -> None:
    for name, expected in log.rows().items():
        np.testing.assert_array_equal(getattr(batch, name), expected.astype(getattr(batch, name).dtype), name)
    assert batch.env_ids.tolist() == [0] * len(batch)
    assert len(batch) == result.total_steps
    for episode, record in zip(batch.episodes(), result.episodes, strict=True):
        assert episode.episode_ids[0] == record.index and len(episode) == record.length
        assert float(episode.rewards.sum()) == pytest.approx(record.episode_return, abs=1e-4)
        assert (bool(episode.terminated[-1]), bool(episode.truncated[-1])) == (
            record.terminated,
            record.truncated,
        )
        np.testing.assert_array_equal(episode.next_observations[:-1], episode.observations[1:])


@pytest.fixture
def fake_agent(fake_backend):
    with polyrl.Agent(backend=fake_backend, algorithm="linear", env="CartPole-v1", seed=3) as agent:
        yield agent


def test_play_records_every_step_it_played(fake_agent, tmp_path):
    target = tmp_path / "play.npz"
    result = fake_agent.play(episodes=3, seed=11, record=target)
    assert result.recorded == str(target)
    batch = read_experience(target)
    log = StepLog()
    again = fake_agent.play(episodes=3, seed=11, callbacks=[log])
    assert [e.episode_return for e in again.episodes] == [e.episode_return for e in result.episodes]
    assert_recording_is_the_play(batch, log, result)
    assert batch.episode_ids.tolist() == [e.index for e in result.episodes for _ in range(e.length)]
    assert batch.actions.dtype == np.int64 and batch.observations.dtype == np.float32
    env = fake_agent.env_source.make(training=False)
    first, _ = env.reset(seed=11)
    np.testing.assert_array_equal(batch.observations[0], first)
    assert batch.infos == {
        "source": "play",
        "backend": "fake",
        "algorithm": "linear",
        "env_id": "CartPole-v1",
        "actions": "deterministic",
    }


def test_a_step_cap_is_recorded_as_truncation_and_box_actions_as_sent(fake_backend, tmp_path):
    with polyrl.Agent(backend=fake_backend, algorithm="linear", env="Pendulum-v1", seed=0) as agent:
        result = agent.play(episodes=2, max_steps=5, seed=1, record=tmp_path / "pendulum.npz")
        log = StepLog()
        agent.play(episodes=2, max_steps=5, seed=1, callbacks=[log])
    batch = read_experience(result.recorded)
    assert_recording_is_the_play(batch, log, result)
    assert batch.truncated.tolist() == ([False] * 4 + [True]) * 2 and not batch.terminated.any()
    assert batch.actions.shape == (10, 1) and batch.actions.dtype == np.float32
    assert (np.abs(batch.actions) <= 2.0).all()  # clipped into Pendulum's bounds, as sent to the env


def test_recording_refuses_an_existing_target_before_playing(fake_agent, tmp_path, recorder):
    target = tmp_path / "taken.npz"
    target.write_bytes(b"mine")
    with pytest.raises(ExperienceError, match="exists already"):
        fake_agent.play(episodes=2, record=str(target), callbacks=[recorder])
    assert target.read_bytes() == b"mine"
    assert "on_episode_begin" not in recorder.calls  # refused before any episode


def test_a_minari_target_without_minari_fails_before_playing(fake_agent, tmp_path, recorder, monkeypatch):
    import sys

    from polyrl.errors import ExtraNotInstalledError

    monkeypatch.setitem(sys.modules, "minari", None)  # import minari now raises ImportError
    with pytest.raises(ExtraNotInstalledError, match=r"pip install 'polyrl\[experience\]'"):
        fake_agent.play(episodes=1, record=tmp_path / "ds-v0", callbacks=[recorder])
    assert "on_episode_begin" not in recorder.calls and not (tmp_path / "ds-v0").exists()


def test_play_without_record_writes_nothing(fake_agent, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fake_agent.play(episodes=1).recorded is None
    assert list(tmp_path.iterdir()) == []


def test_play_records_a_minari_dataset(fake_agent, tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    target = tmp_path / "cartpole-fake-v0"
    result = fake_agent.play(episodes=2, seed=4, record=target)
    log = StepLog()
    fake_agent.play(episodes=2, seed=4, callbacks=[log])
    assert_recording_is_the_play(read_experience(target), log, result)
    dataset = minari.MinariDataset(target / "data")
    assert dataset.total_episodes == 2 and dataset.total_steps == result.total_steps
    assert dataset.spec.env_spec.id == "CartPole-v1"
    assert dataset.action_space == fake_agent.action_space


def test_sb3_ppo_recording_matches_a_second_play(tmp_path):
    pytest.importorskip("stable_baselines3")
    spec = {"env": "CartPole-v1", "seed": 0, "preset": "none", "iteration_steps": 64, "batch_size": 32}
    with polyrl.Agent(backend="sb3", algorithm="ppo", **spec) as agent:
        agent.train(iterations=1)
        result = agent.play(episodes=2, seed=21, record=tmp_path / "ppo.npz")
        log = StepLog()
        agent.play(episodes=2, seed=21, callbacks=[log])
    batch = read_experience(tmp_path / "ppo.npz")
    assert_recording_is_the_play(batch, log, result)
    assert batch.infos["backend"] == "sb3" and batch.infos["algorithm"] == "ppo"


# -- polyrl record -------------------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture
def checkpoint(fake_agent, tmp_path):
    fake_agent.train(iterations=1)
    fake_agent.save(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_polyrl_record_writes_the_episodes_it_reports(checkpoint, fake_agent, tmp_path):
    out = tmp_path / "out" / "expert.npz"
    args = ["record", str(checkpoint), "--episodes", "3", "--seed", "5", "--out", str(out), "--json"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    batch = read_experience(out)
    assert summary["path"] == str(out) and summary["format"] == "npz"
    assert summary["episodes"] == 3 and summary["transitions"] == len(batch)
    returns = [float(e.rewards.sum()) for e in batch.episodes()]
    assert summary["return_mean"] == pytest.approx(np.mean(returns))
    assert summary["result"]["recorded"] == str(out) and summary["deterministic"] is True
    # The same episodes as playing the checkpoint with that seed.
    log = StepLog()
    with polyrl.Agent.load(checkpoint) as agent:
        played = agent.play(episodes=3, seed=5, callbacks=[log])
    assert_recording_is_the_play(batch, log, played)

    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists already" in " ".join(again.output.split())


def test_polyrl_record_prints_a_summary_and_writes_minari(checkpoint, tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "expert-v0"
    args = ["record", str(checkpoint), "--episodes", "2", "--out", str(out), "--stochastic"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    batch = read_experience(out)
    text = " ".join(result.output.split())
    assert f"wrote {len(batch)} transitions of 2 episode(s)" in text and str(out) in text
    assert batch.infos["actions"] == "stochastic" and batch.episode_ids.max() == 1


def test_polyrl_record_overwrite_replaces_only_a_dataset_polyrl_wrote(checkpoint, tmp_path):
    out = tmp_path / "expert.npz"
    first = ["record", str(checkpoint), "--episodes", "3", "--seed", "5", "--out", str(out), "--json"]
    assert runner.invoke(app, first, catch_exceptions=False).exit_code == 0
    before = out.read_bytes()
    second = ["record", str(checkpoint), "--episodes", "2", "--seed", "9", "--out", str(out), "--json"]
    refused = runner.invoke(app, second)
    text = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "exists already" in text and "--overwrite" in text
    assert "overwrite=True" not in text and out.read_bytes() == before
    replaced = runner.invoke(app, [*second, "--overwrite"], catch_exceptions=False)
    assert replaced.exit_code == 0, replaced.output
    summary = json.loads(replaced.output)
    batch = read_experience(out)
    assert summary["path"] == str(out) and summary["result"]["recorded"] == str(out)
    assert summary["episodes"] == 2 and sorted(set(batch.episode_ids.tolist())) == [0, 1]
    assert summary["transitions"] == len(batch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "expert.npz"]  # no staging left
    foreign = tmp_path / "notes.npz"
    foreign.write_bytes(b"the user's own file")
    kept = runner.invoke(app, ["record", str(checkpoint), "--out", str(foreign), "--overwrite"])
    assert kept.exit_code == 2 and "not a polyrl experience file" in " ".join(kept.output.split())
    assert foreign.read_bytes() == b"the user's own file"


def test_polyrl_record_overwrite_swaps_a_minari_dataset(checkpoint, tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    out = tmp_path / "expert-v0"
    args = ["record", str(checkpoint), "--out", str(out), "--seed", "1"]
    assert runner.invoke(app, [*args, "--episodes", "3"], catch_exceptions=False).exit_code == 0
    refused = runner.invoke(app, [*args, "--episodes", "2"])
    assert refused.exit_code == 2 and "--overwrite" in " ".join(refused.output.split())
    assert read_experience(out).episode_ids.max() == 2
    result = runner.invoke(app, [*args, "--episodes", "2", "--overwrite"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert read_experience(out).episode_ids.max() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "expert-v0"]
