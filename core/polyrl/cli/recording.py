"""`polyrl play/evaluate --record FILE`: the played episodes as a GIF or MP4 named by the user."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from polyrl.callbacks.movies import MovieRecorder
from polyrl.errors import ConfigurationError

if TYPE_CHECKING:
    from polyrl.agent import Agent
    from polyrl.config import PlayConfig
    from polyrl.records import PlayResult

FORMATS: dict[str, Literal["gif", "mp4"]] = {".gif": "gif", ".mp4": "mp4"}


def movie_names(target: Path, episodes: int) -> list[Path]:
    """Where each episode's movie goes: exactly `target` for one episode, else TARGET-episode-N.EXT."""
    if episodes == 1:
        return [target]
    return [target.with_name(f"{target.stem}-episode-{i}{target.suffix}") for i in range(episodes)]


def recorded_play(agent: Agent, config: PlayConfig, target: Path) -> tuple[PlayResult, list[Path]]:
    """Play `config` with a MovieRecorder and move its movies to the names the user asked for.

    The recorder writes into a fresh hidden directory beside `target`, so no file of the user's
    with the recorder's own names (play-000-episode-0.gif) can be overwritten; each movie then
    moves into place atomically.
    """
    movie_format = FORMATS.get(target.suffix.lower())
    if movie_format is None:
        raise ConfigurationError(f"--record {target}: name a .gif or .mp4 file, e.g. --record cartpole.gif")
    if config.render_mode == "human":
        raise ConfigurationError("--record films rgb_array frames; drop --render to record")
    if target.is_dir():
        raise ConfigurationError(f"--record {target} is a directory; name a .gif or .mp4 file in it")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigurationError(f"--record {target}: the folder {parent} does not exist; create it first")
    staging = Path(tempfile.mkdtemp(prefix=".polyrl-record-", dir=parent))
    try:
        recorder = MovieRecorder(staging, format=movie_format)
        result = agent.play(config, callbacks=[recorder])
        written = list(recorder.files)  # in episode order
        names = movie_names(target, len(written))
        for source, name in zip(written, names, strict=True):
            os.replace(source, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result, names
