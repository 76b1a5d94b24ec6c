"""Writing and reading experience: `write_experience` and `read_experience`, the two entry points.

A target ending in `.npz` is one NumPy file (needs nothing beyond NumPy; see
`polyrl.experience.npz`); anything else is a Minari dataset directory (`polyrl[experience]`;
see `polyrl.experience.minari_io`). Neither replaces what is at the target unless asked to
(`overwrite=True`), and a directory that is not a Minari dataset is never replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from polyrl.errors import ExperienceError
from polyrl.experience.batch import TransitionBatch, TransitionSchema
from polyrl.files import writable_dir, writable_file

ExperienceFormat = Literal["npz", "minari"]


def experience_format(target: str | Path) -> ExperienceFormat:
    """The format a target is written in: "npz" for a `.npz` name, else "minari" (a directory)."""
    return "npz" if Path(target).suffix.lower() == ".npz" else "minari"


def check_target(target: str | Path, overwrite: bool = False, advice: str | None = None) -> Path:
    """The absolute target, once it is sure it may be written; ExperienceError otherwise.

    Called before anything is recorded, so a taken name fails before an hour of play. An
    existing file or dataset is replaced only with `overwrite`, and only one polyrl could have
    written (a polyrl .npz file, a Minari dataset); a directory that holds anything else never
    is. `advice` replaces what the message says to do about an existing target (the default
    names overwrite=True; the CLI names --overwrite).
    """
    path = Path(target).expanduser().absolute()
    if experience_format(path) == "npz":
        if path.exists() and not path.is_dir():
            if not overwrite:
                advice = advice or "choose another name or pass overwrite=True to replace it"
                raise ExperienceError(f"{path} exists already; {advice}")
            if not _is_experience_file(path):
                raise ExperienceError(
                    f"{path} exists and is not a polyrl experience file; polyrl replaces only files "
                    "it wrote: choose another name, or move that file away first"
                )
        return writable_file(path, "write_experience")
    if path.is_file():
        raise ExperienceError(
            f"{path} is a file, and a Minari dataset is a directory: name a new directory, or a .npz "
            "file for one NumPy file"
        )
    if path.is_dir() and any(path.iterdir()):
        if not (path / "data" / "metadata.json").is_file():
            raise ExperienceError(
                f"{path} is a directory that holds something other than a Minari dataset; polyrl "
                "writes a dataset only into a new or empty directory (or over a dataset, with overwrite)"
            )
        if not overwrite:
            raise ExperienceError(
                f"a Minari dataset exists already at {path}; "
                + (advice or "choose another directory or pass overwrite=True to replace it")
            )
    writable_dir(path.parent, "write_experience")
    return path


def _is_experience_file(path: Path) -> bool:
    """Whether `path` is a .npz archive with polyrl's header member (what write_experience writes)."""
    import zipfile

    from polyrl.experience.npz import META_KEY

    try:
        with zipfile.ZipFile(path) as archive:
            return f"{META_KEY}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def move_into_place(written: Path, target: Path) -> Path:
    """Move a dataset written elsewhere (same file system) onto `target`, replacing what is there.

    The caller checked, with `check_target(target, overwrite=True)`, that the target may be
    replaced; a .npz file is renamed over atomically, a Minari directory swapped in.
    """
    if experience_format(target) == "npz":
        from polyrl.files import replace_atomically

        replace_atomically(written, target)
        return target
    from polyrl.experience.minari_io import _move_into_place

    _move_into_place(written, target)
    return target


def write_experience(
    batch: TransitionBatch,
    target: str | Path,
    *,
    schema: TransitionSchema | None = None,
    env_id: str | None = None,
    overwrite: bool = False,
    observation_space: Any = None,
    action_space: Any = None,
) -> Path:
    """Write `batch` to `target` (a `.npz` file, else a Minari dataset directory); return its absolute path.

    `schema` (default: the agent spaces' schema when `observation_space` and `action_space` are
    given, else the batch's own) is what the file records; the arrays are cast to it, and a
    shape that differs is an ExperienceError. `env_id` (a Gymnasium id) is kept in
    `infos["env_id"]` and becomes a Minari dataset's env spec. The spaces, when given (e.g. an
    agent's `observation_space` and `action_space`), are a Minari dataset's spaces; without
    them the spaces are derived from the arrays. An existing target is replaced only with
    `overwrite=True` (ExperienceError otherwise).
    """
    if schema is None:
        if observation_space is not None and action_space is not None:
            schema = TransitionSchema.for_spaces(observation_space, action_space)
        else:
            schema = batch.transition_schema()
    batch = batch.conformed(schema)
    if env_id and "env_id" not in batch.infos:
        batch = batch.model_copy(update={"infos": {**batch.infos, "env_id": env_id}})
    path = check_target(target, overwrite)
    if experience_format(path) == "npz":
        from polyrl.experience.npz import write_npz

        return write_npz(batch, path, schema)
    from polyrl.experience.minari_io import write_minari

    return write_minari(
        batch,
        path,
        schema,
        env_id=env_id or batch.infos.get("env_id"),
        observation_space=observation_space,
        action_space=action_space,
    )


def read_experience(source: str | Path) -> TransitionBatch:
    """The transitions in a `.npz` file or a Minari dataset (a directory, or an id in Minari's root).

    ExperienceError when the source is missing or malformed; ExtraNotInstalledError when a
    Minari dataset is read without `polyrl[experience]`. `infos` holds what the file recorded
    about the transitions (e.g. "env_id").
    """
    path = Path(source).expanduser()
    if path.is_file() or experience_format(path) == "npz":
        from polyrl.experience.npz import read_npz

        if not path.exists():
            raise ExperienceError(f"no experience file at {path.absolute()}: check the path")
        return read_npz(path)
    from polyrl.experience.minari_io import read_minari

    return read_minari(source)
