"""MovieRecorder: deterministic episodes as MP4 or GIF from the env's rgb_array frames."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from polyrl.callbacks.base import Callback
from polyrl.config import PlayConfig
from polyrl.envs import headless_render_hint
from polyrl.errors import ConfigurationError, RenderError
from polyrl.files import replace_atomically, temporary_sibling, writable_dir

if TYPE_CHECKING:
    import numpy as np

    from polyrl.agent import Agent
    from polyrl.callbacks.context import PlayContext, RunContext, TrainContext
    from polyrl.records import EpisodeRecord, IterationRecord, PlayResult


def _frame_problem(frame: Any) -> str | None:
    import numpy as np

    if not isinstance(frame, np.ndarray):
        return f"render() returned {type(frame).__name__}, not an image array"
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        return f"render() returned an array of shape {frame.shape}, not (height, width, 3 or 4)"
    return None


def check_rgb_array(agent: Agent) -> None:
    """Build an env with render_mode="rgb_array", render one frame, and raise RenderError if it fails."""
    source = agent.env_source
    modes = None
    try:
        env = source.make(render_mode="rgb_array", training=False)
    except Exception as exc:
        raise RenderError(
            f"the env {source.name!r} cannot be built with render_mode='rgb_array' ({exc}); movies need "
            f"an env that renders rgb_array frames{headless_render_hint(str(exc))}"
        ) from exc
    try:
        modes = (getattr(env, "metadata", None) or {}).get("render_modes")
        env.reset(seed=0)
        frame: Any = env.render()  # checked below: whatever the env returns
        problem = _frame_problem(frame)
    except Exception as exc:
        problem = f"render() raised {type(exc).__name__}: {exc}"
    finally:
        env.close()
    if problem is not None:
        raise RenderError(
            f"the env {source.name!r} cannot render rgb_array frames: {problem} (its render_modes: "
            f"{modes}). Movies need an env created with render_mode='rgb_array' whose render() returns "
            f"an (H, W, 3) uint8 array{headless_render_hint(problem)}"
        )


def write_movie(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """Write frames to `path` (format from the suffix: .gif or .mp4), atomically."""
    import imageio.v2 as imageio
    import numpy as np

    stack = np.stack([np.asarray(f, dtype=np.uint8)[..., :3] for f in frames])
    staging = temporary_sibling(path)
    if path.suffix == ".gif":
        # duration is per frame in milliseconds for the pillow GIF writer; loop=0 loops forever.
        imageio.mimwrite(staging, list(stack), format="GIF", duration=1000 / fps, loop=0)
    else:
        # H.264 in yuv420p needs even sizes: pad one pixel row/column rather than rescale.
        height, width = stack.shape[1:3]
        stack = np.pad(stack, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        imageio.mimwrite(staging, list(stack), format="FFMPEG", fps=fps, macro_block_size=1)
    replace_atomically(staging, path)
    return path


class _EpisodeFilm(Callback):
    """Collects the frames of each played episode and writes one movie per episode."""

    def __init__(self, recorder: MovieRecorder, prefix: str) -> None:
        self.recorder = recorder
        self.prefix = prefix
        self.frames: list[Any] = []

    def on_episode_begin(self, context: PlayContext, index: int) -> None:
        self.frames = []

    def on_step_begin(self, context: PlayContext, observation: Any) -> None:
        self.frames.append(self.recorder.frame(context))

    def on_episode_end(self, context: PlayContext, episode: EpisodeRecord) -> None:
        self.frames.append(self.recorder.frame(context))
        name = f"{self.prefix}-episode-{episode.index}.{self.recorder.format}"
        self.recorder.files.append(
            write_movie(self.recorder.directory / name, self.frames, self.recorder.fps)
        )
        self.frames = []


class MovieRecorder(Callback):
    """Record deterministic episodes as movies (one file per episode) in `directory`.

    - In training: every `every` iterations (lifetime iteration number, None: never), play
      `episodes` deterministic episodes (at most `max_steps` steps each, first reset seed
      `seed`) in a fresh env with render_mode="rgb_array", written as
      `iteration-000010-episode-0.gif`.
    - In play: passed to `agent.play(callbacks=[...])` or `agent.evaluate(...)`, films the
      played episodes (`play-000-episode-0.gif`, ...), asking for rgb_array rendering itself.

    `format` is "gif" (Pillow) or "mp4" (needs imageio-ffmpeg); frames come from the env's own
    `render()`. An env that cannot render rgb_array frames is an error when training or play
    starts. `files` lists what was written.
    """

    def __init__(
        self,
        directory: str | Path = "movies",
        every: int | None = None,
        episodes: int = 1,
        max_steps: int | None = None,
        format: Literal["gif", "mp4"] = "gif",
        fps: int = 30,
        seed: int | None = None,
    ) -> None:
        if format not in ("gif", "mp4"):
            raise ConfigurationError(f"MovieRecorder format must be 'gif' or 'mp4', got {format!r}")
        if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
            raise ConfigurationError(f"MovieRecorder every must be an integer >= 1 or None, got {every!r}")
        if not isinstance(fps, int) or isinstance(fps, bool) or fps < 1:
            raise ConfigurationError(f"MovieRecorder fps must be an integer >= 1, got {fps!r}")
        self.directory = Path(directory)
        self.every = every
        self.episodes = episodes
        self.max_steps = max_steps
        self.format = format
        self.fps = fps
        self.seed = seed
        self.files: list[Path] = []
        self._plays = 0
        self._film: _EpisodeFilm | None = None

    def _check_writer(self) -> None:
        missing = [
            m
            for m in ("imageio", *(["imageio_ffmpeg"] if self.format == "mp4" else []))
            if importlib.util.find_spec(m) is None
        ]
        if missing:
            package = " ".join(m.replace("_", "-") for m in missing)
            raise ConfigurationError(
                f"MovieRecorder needs {', '.join(missing)} for {self.format} movies: pip install {package}"
            )

    def frame(self, context: RunContext) -> Any:
        """The frame the env being played shows now; RenderError if it is not an RGB array."""
        frame = context.render()
        problem = _frame_problem(frame)
        if problem is not None:
            raise RenderError(
                f"the env {context.agent.env_source.name!r} cannot render rgb_array frames: {problem}"
            )
        return frame

    # -- training: film every N iterations ----------------------------------------------------
    def on_train_begin(self, context: TrainContext) -> None:
        self._check_writer()
        self.directory = writable_dir(self.directory, repr(self))
        if self.every is not None:
            check_rgb_array(context.agent)

    def on_iteration_end(self, context: TrainContext, record: IterationRecord) -> None:
        if self.every is None or record.iteration % self.every:
            return
        play = PlayConfig(
            episodes=self.episodes,
            max_steps=self.max_steps,
            seed=self.seed,
            deterministic=True,
            render_mode="rgb_array",
        )
        context.agent.play(play, callbacks=[_EpisodeFilm(self, f"iteration-{record.iteration:06d}")])

    # -- play: film the episodes of the play() this recorder was passed to ----------------------
    def on_play_begin(self, context: PlayContext) -> None:
        config = context.config
        if config.render_mode == "human":
            raise RenderError(
                "MovieRecorder films rgb_array frames, but this play asks for render_mode='human'; "
                "drop render_mode (the recorder asks for rgb_array itself)"
            )
        self._check_writer()
        self.directory = writable_dir(self.directory, repr(self))
        check_rgb_array(context.agent)
        config.render_mode = "rgb_array"  # the core builds the env after on_play_begin
        self._film = _EpisodeFilm(self, f"play-{self._plays:03d}")
        self._plays += 1

    def on_episode_begin(self, context: PlayContext, index: int) -> None:
        if self._film is not None:
            self._film.on_episode_begin(context, index)

    def on_step_begin(self, context: PlayContext, observation: Any) -> None:
        if self._film is not None:
            self._film.on_step_begin(context, observation)

    def on_episode_end(self, context: PlayContext, episode: EpisodeRecord) -> None:
        if self._film is not None:
            self._film.on_episode_end(context, episode)

    def on_play_end(self, context: PlayContext, result: PlayResult) -> None:
        self._film = None

    def __repr__(self) -> str:
        return f"MovieRecorder({str(self.directory)!r}, every={self.every}, format={self.format!r})"
