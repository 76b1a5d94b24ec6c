"""Experience files: .npz and Minari datasets hold a TransitionBatch exactly, and refuse what they should.

Round trips compare every array (values and dtypes) for image (uint8) and vector observations
and Discrete, Box, MultiDiscrete and MultiBinary actions; writing never replaces a user's
file unless asked; malformed files fail with ExperienceError saying what is wrong.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from polyrl.errors import ExperienceError, ExtraNotInstalledError
from polyrl.experience import TransitionBatch, read_experience, write_experience
from polyrl.experience.npz import META_KEY

ACTIONS = {
    "discrete": lambda rng, n: rng.integers(0, 3, n),
    "box": lambda rng, n: rng.uniform(-1, 1, (n, 2)).astype(np.float32),
    "multi_discrete": lambda rng, n: rng.integers(0, 4, (n, 2)),
    "multi_binary": lambda rng, n: rng.integers(0, 2, (n, 3)).astype(np.int8),
}


def recorded_batch(
    kind: str, image: bool, *, last_cut: bool = True, optional: bool = True
) -> TransitionBatch:
    """Two episodes as a recorder makes them: ids 4 (terminated) and 9 (slot 1; cut off or truncated)."""
    rng = np.random.default_rng(7)
    shape = (6, 5, 3) if image else (4,)
    if image:
        frames = rng.integers(0, 256, (9, *shape), dtype=np.uint8)
    else:
        frames = rng.normal(size=(9, *shape)).astype(np.float32)
    first, second = frames[:5], frames[5:]  # 4 steps, then 3 steps
    rows = 7
    fields = {
        "observations": np.concatenate([first[:-1], second[:-1]]),
        "next_observations": np.concatenate([first[1:], second[1:]]),
        "actions": ACTIONS[kind](rng, rows),
        "rewards": rng.normal(size=rows).astype(np.float32),
        "terminated": [False, False, False, True, False, False, False],
        "truncated": [False] * 6 + [not last_cut],
        "episode_ids": [4] * 4 + [9] * 3,
        "env_ids": [0] * 4 + [1] * 3,
    }
    if optional:
        fields["log_probs"] = rng.normal(size=rows)
        fields["values"] = rng.normal(size=rows)
    return TransitionBatch(**fields, infos={"algorithm": "ppo", "backend": "sb3"})


def assert_same_arrays(
    read: TransitionBatch, written: TransitionBatch, *, except_truncated: bool = False
) -> None:
    assert set(read.arrays()) == set(written.arrays())
    for name, array in written.arrays().items():
        if except_truncated and name == "truncated":
            continue
        got = read.arrays()[name]
        assert got.dtype == array.dtype, name
        np.testing.assert_array_equal(got, array, err_msg=name)


# -- .npz ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("image", [True, False])
@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_npz_round_trip_is_exact(tmp_path, kind, image):
    batch = recorded_batch(kind, image)
    written = write_experience(batch, tmp_path / "sub" / "play.npz", env_id="CartPole-v1")
    assert written == tmp_path / "sub" / "play.npz" and written.is_file()
    read = read_experience(written)
    assert_same_arrays(read, batch)
    assert read.infos == {"algorithm": "ppo", "backend": "sb3", "env_id": "CartPole-v1"}
    assert read.transition_schema(kind) == batch.transition_schema(kind)
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".")]  # no staging file left


def test_npz_refuses_to_replace_a_file_unless_asked(tmp_path):
    target = tmp_path / "mine.npz"
    batch = recorded_batch("discrete", image=False)
    write_experience(batch.take(slice(0, 3)), target)
    with pytest.raises(ExperienceError, match="exists already; choose another name or pass overwrite=True"):
        write_experience(batch, target)
    assert len(read_experience(target)) == 3
    write_experience(batch, target, overwrite=True)
    assert_same_arrays(read_experience(target), batch)


def test_npz_overwrite_replaces_only_a_file_polyrl_wrote(tmp_path):
    target = tmp_path / "mine.npz"
    target.write_bytes(b"the user's own data")
    batch = recorded_batch("discrete", image=False)
    with pytest.raises(ExperienceError, match="is not a polyrl experience file; polyrl replaces only files"):
        write_experience(batch, target, overwrite=True)
    assert target.read_bytes() == b"the user's own data"


def test_npz_without_optional_arrays_reads_back_without_them(tmp_path):
    batch = recorded_batch("box", image=False, optional=False)
    read = read_experience(write_experience(batch, tmp_path / "x.npz"))
    assert read.log_probs is None and read.values is None
    assert_same_arrays(read, batch)


def test_writing_to_another_schema_casts_or_refuses(tmp_path):
    batch = recorded_batch("discrete", image=False, optional=False)
    wider = batch.model_copy(update={"actions": batch.actions.astype(np.int32)})
    read = read_experience(write_experience(wider, tmp_path / "a.npz", schema=batch.transition_schema()))
    assert read.actions.dtype == np.int64
    np.testing.assert_array_equal(read.actions, batch.actions)
    other = batch.transition_schema().model_copy(update={"observation_shape": [8]})
    with pytest.raises(ExperienceError, match="observation_shape"):
        write_experience(batch, tmp_path / "b.npz", schema=other)
    assert not (tmp_path / "b.npz").exists()


def test_reading_a_missing_file_names_it(tmp_path):
    with pytest.raises(ExperienceError, match=r"no experience file at .*nothing\.npz"):
        read_experience(tmp_path / "nothing.npz")


def test_a_foreign_npz_is_not_polyrl_experience(tmp_path):
    np.savez(tmp_path / "foreign.npz", x=np.arange(3))
    with pytest.raises(ExperienceError, match=r"not polyrl experience .*'polyrl_experience'.*\['x'\]"):
        read_experience(tmp_path / "foreign.npz")


@pytest.mark.parametrize("content", [b"hello", b"garbage", b"", b"PK\x03\x04broken"])
def test_a_file_that_is_no_npz_at_all_is_refused_in_polyrls_words(tmp_path, content):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(ExperienceError) as caught:
        read_experience(tmp_path / "bad.npz")
    message = str(caught.value)
    assert "bad.npz is not a polyrl experience file: it is not a valid .npz archive" in message
    assert "polyrl never loads pickled data" in message
    assert "allow_pickle" not in message and "pickle.load" not in message


def _rewrite(path, drop=(), meta=None) -> None:
    """Rewrite a written .npz without some members, or with another header."""
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files if name not in drop}
    if meta is not None:
        members[META_KEY] = np.array(json.dumps(meta))
    np.savez(path, **members)


def test_missing_arrays_are_named(tmp_path):
    path = write_experience(recorded_batch("discrete", image=False), tmp_path / "x.npz")
    _rewrite(path, drop=("rewards", "values"))
    with pytest.raises(ExperienceError, match=r"lacks the arrays \['rewards', 'values'\]"):
        read_experience(path)


def test_a_malformed_header_is_refused(tmp_path):
    path = write_experience(recorded_batch("discrete", image=False), tmp_path / "x.npz")
    _rewrite(path, meta={"format": "polyrl-experience", "version": 1, "schema": {"observation_shape": "?"}})
    with pytest.raises(ExperienceError, match="malformed 'polyrl_experience' header"):
        read_experience(path)


def test_arrays_that_disagree_with_the_header_are_refused(tmp_path):
    path = write_experience(recorded_batch("discrete", image=False), tmp_path / "x.npz")
    with np.load(path) as archive:
        members = dict(archive.items())
    members["observations"] = members["observations"][:, :2]
    members["next_observations"] = members["next_observations"][:, :2]
    np.savez(path, **members)
    with pytest.raises(
        ExperienceError, match=r"the arrays of .*x\.npz does not fit.*observation_shape: \[2\]"
    ):
        read_experience(path)


def test_object_arrays_are_never_unpickled(tmp_path):
    path = write_experience(recorded_batch("discrete", image=False), tmp_path / "x.npz")
    with np.load(path) as archive:
        members = dict(archive.items())
    members["rewards"] = np.array([object()] * 7, dtype=object)
    np.savez(path, **members)
    with pytest.raises(ExperienceError, match="'rewards' as an object array .* polyrl never loads") as caught:
        read_experience(path)
    assert "allow_pickle" not in str(caught.value)
    assert zipfile.is_zipfile(path)


# -- Minari --------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_home_datasets(tmp_path, monkeypatch):
    """Minari's default root points into tmp_path: no test writes ~/.minari."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari-root"))


@pytest.fixture
def minari():
    """The minari module (polyrl[experience]); the Minari tests skip without it."""
    return pytest.importorskip("minari")


@pytest.mark.parametrize("image", [True, False])
@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_minari_round_trip_is_exact_and_a_cut_off_episode_is_stored_truncated(minari, tmp_path, kind, image):
    batch = recorded_batch(kind, image, last_cut=True)
    target = tmp_path / "datasets" / "play-v0"
    assert write_experience(batch, target, env_id="CartPole-v1") == target
    read = read_experience(target)
    assert_same_arrays(read, batch, except_truncated=True)
    # The second episode was cut off by the end of the recording: Minari gets it truncated.
    assert read.truncated.tolist() == [False] * 6 + [True]
    assert read.infos == {"algorithm": "ppo", "backend": "sb3", "env_id": "CartPole-v1"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["play-v0"]  # no staging left

    # Minari itself reads it: T+1 observations per episode, the env spec, the cut-off episode truncated.
    dataset = minari.MinariDataset(target / "data")
    episodes = list(dataset.iterate_episodes())
    assert [len(e) for e in episodes] == [4, 3]
    assert [len(e.observations) for e in episodes] == [5, 4]
    np.testing.assert_array_equal(episodes[1].observations[-1], batch.next_observations[-1])
    assert episodes[0].terminations.tolist() == [False, False, False, True]
    assert episodes[1].truncations.tolist() == [False, False, True]
    assert dataset.spec.env_spec.id == "CartPole-v1"


def test_a_minari_episode_that_ended_keeps_its_flags(minari, tmp_path):
    batch = recorded_batch("discrete", image=False, last_cut=False)
    read = read_experience(write_experience(batch, tmp_path / "ended"))
    assert_same_arrays(read, batch)


def test_a_dataset_directory_named_like_an_id_loads_by_id_in_its_root(minari, tmp_path, monkeypatch):
    batch = recorded_batch("box", image=False, optional=False)
    root = tmp_path / "root"
    write_experience(batch, root / "pendulum-play-v2")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    assert minari.load_dataset("pendulum-play-v2").total_steps == 7
    assert_same_arrays(read_experience("pendulum-play-v2"), batch, except_truncated=True)


def test_an_unversioned_directory_gets_the_id_name_v0(minari, tmp_path):
    write_experience(recorded_batch("discrete", image=False), tmp_path / "my data")
    assert minari.MinariDataset(tmp_path / "my data" / "data").spec.dataset_id == "my-data-v0"


def test_minari_refuses_to_replace_a_dataset_unless_asked_and_never_replaces_other_folders(minari, tmp_path):
    batch = recorded_batch("discrete", image=False)
    target = tmp_path / "ds"
    write_experience(batch, target)
    with pytest.raises(ExperienceError, match="a Minari dataset exists already at .*overwrite=True"):
        write_experience(batch.take(slice(0, 4)), target)
    write_experience(batch.take(slice(0, 4)), target, overwrite=True)
    assert len(read_experience(target)) == 4

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ExperienceError, match="holds something other than a Minari dataset"):
        write_experience(batch, folder, overwrite=True)
    assert (folder / "cat.jpg").read_bytes() == b"meow"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExperienceError, match="is a file, and a Minari dataset is a directory"):
        write_experience(batch, tmp_path / "file")


def test_rows_that_are_not_consecutive_steps_cannot_be_a_minari_episode(minari, tmp_path):
    batch = recorded_batch("discrete", image=False)
    shuffled = batch.take(np.array([1, 0, 2, 3, 4, 5, 6]))
    with pytest.raises(ExperienceError, match="episode 4 is not a sequence of consecutive steps"):
        write_experience(shuffled, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_reading_what_is_not_a_dataset(minari, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExperienceError, match="is not a Minari dataset"):
        read_experience(tmp_path / "empty")
    with pytest.raises(ExperienceError, match="no experience at nope-v0: no such file or directory"):
        read_experience("nope-v0")


@pytest.mark.filterwarnings("ignore:.*(eval_env|env_spec).*:UserWarning")
def test_a_foreign_minari_dataset_reads_with_discrete_observations_encoded(minari, tmp_path, monkeypatch):
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "foreign-root"))
    buffer = EpisodeBuffer(
        observations=np.array([0, 3, 1]),
        actions=np.array([1, 0]),
        rewards=[0.5, 1.0],
        terminations=[False, True],
        truncations=[False, False],
    )
    minari.create_dataset_from_buffers(
        "grid/walk-v1",
        [buffer],
        observation_space=spaces.Discrete(4),
        action_space=spaces.Discrete(2),
        algorithm_name="x",
        author="x",
        author_email="x",
        code_permalink="x",
        description="x",
        eval_env=None,
    )
    read = read_experience("grid/walk-v1")
    np.testing.assert_array_equal(read.observations, np.eye(4, dtype=np.float32)[[0, 3]])
    np.testing.assert_array_equal(read.next_observations, np.eye(4, dtype=np.float32)[[3, 1]])
    assert read.actions.tolist() == [1, 0] and read.actions.dtype == np.int64
    assert read.episode_ids.tolist() == [0, 0] and read.env_ids.tolist() == [0, 0]
    assert read.terminated.tolist() == [False, True] and read.rewards.tolist() == [0.5, 1.0]


def test_minari_missing_is_reported_with_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "minari", None)  # import minari now raises ImportError
    with pytest.raises(ExtraNotInstalledError, match=r"pip install 'polyrl\[experience\]'"):
        write_experience(recorded_batch("discrete", image=False), tmp_path / "ds")
    # .npz needs nothing beyond NumPy.
    assert len(read_experience(write_experience(recorded_batch("discrete", False), tmp_path / "x.npz"))) == 7
