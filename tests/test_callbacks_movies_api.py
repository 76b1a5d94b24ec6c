"""MovieRecorder (GIF/MP4, training and play, non-rendering envs) and APICallLogger."""

from __future__ import annotations

import pytest
from callbacks_support import backend_fixture, make_agent, make_no_render_env
from polyrl.callbacks import APICallLogger, MovieRecorder, RenderError
from polyrl.errors import CallbackError

imageio = pytest.importorskip("imageio.v3")

backend = backend_fixture()


def frames(path) -> int:
    return len(imageio.imread(path, index=None))


def gif_milliseconds(path) -> int:
    """A GIF's play time: Pillow merges identical consecutive frames but keeps their duration."""
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return sum(frame.info["duration"] for frame in ImageSequence.Iterator(image))


def test_gif_every_n_iterations_and_on_play(backend, tmp_path):
    agent = make_agent(backend)
    movies = MovieRecorder(tmp_path, every=2, max_steps=5, fps=10)
    agent.train(iterations=2, callbacks=[movies])
    assert [p.name for p in movies.files] == ["iteration-000002-episode-0.gif"]
    # The first frame plus one per step (at most 5 steps), 100 ms each at 10 fps.
    assert gif_milliseconds(movies.files[0]) in range(200, 700, 100)

    result = agent.play(episodes=2, max_steps=4, callbacks=[movies])
    assert [p.name for p in movies.files[1:]] == ["play-000-episode-0.gif", "play-000-episode-1.gif"]
    for path, episode in zip(movies.files[1:], result.episodes, strict=True):
        assert gif_milliseconds(path) == 100 * (episode.length + 1)


def test_mp4(fake_backend, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    agent = make_agent("fake")
    movies = MovieRecorder(tmp_path, format="mp4")
    result = agent.play(episodes=1, max_steps=6, callbacks=[movies])
    assert movies.files[0].suffix == ".mp4" and frames(movies.files[0]) == result.episodes[0].length + 1


def test_env_without_rgb_array_fails_at_train_and_play_begin(fake_backend, tmp_path):
    agent = make_agent("fake", env=make_no_render_env)
    with pytest.raises(CallbackError, match="cannot render rgb_array frames") as info:
        agent.train(iterations=3, callbacks=[MovieRecorder(tmp_path, every=1)])
    assert isinstance(info.value.__cause__, RenderError) and agent.iterations == 0
    with pytest.raises(CallbackError, match="render\\(\\) returned NoneType"):
        agent.play(episodes=1, callbacks=[MovieRecorder(tmp_path)])
    with pytest.raises(CallbackError, match="render_mode='human'"):
        make_agent("fake").play(episodes=1, render_mode="human", callbacks=[MovieRecorder(tmp_path)])


def test_api_calls_of_training_and_play(backend, tmp_path):
    agent = make_agent(backend)
    logger = APICallLogger(tmp_path / "api.log")
    agent.train(iterations=2, callbacks=[logger])
    assert [(c.target, c.method) for c in logger.calls] == [("driver", "train_iteration")] * 2
    logger.calls.clear()

    result = agent.play(episodes=1, max_steps=3, seed=5, callbacks=[logger])
    length = result.episodes[0].length
    assert [f"{c.target}.{c.method}" for c in logger.calls] == [
        "env.make",
        "env.reset",
        *["driver.act", "env.step"] * length,
        "env.close",
    ]
    assert logger.calls[1].summary == "seed=5" and "deterministic=True" in logger.calls[2].summary
    assert all(c.seconds >= 0 for c in logger.calls)
    assert logger.totals()["env.step"][0] == length

    lines = (tmp_path / "api.log").read_text().splitlines()
    assert len(lines) == 2 + len(logger.calls)
    assert lines[0].startswith("driver.train_iteration\t") and lines[-1].startswith("env.close\t")
