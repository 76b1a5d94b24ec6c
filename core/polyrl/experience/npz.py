"""A TransitionBatch as one NumPy .npz file: the arrays by field name plus a JSON member.

The JSON member (`polyrl_experience`, a 0-d string array, so no pickle is needed to read it)
says the file is polyrl experience and holds the schema, the batch's `infos` and the names of
the arrays. Files are written through a hidden sibling and renamed into place (a crash never
leaves half a file) and read with `allow_pickle=False`, so reading a file cannot run code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from polyrl.errors import ExperienceError
from polyrl.experience.batch import OPTIONAL_FIELDS, REQUIRED_FIELDS, TransitionBatch, TransitionSchema
from polyrl.files import replace_atomically, temporary_sibling

#: The member that marks a polyrl experience file and describes it.
META_KEY = "polyrl_experience"
FORMAT = "polyrl-experience"
VERSION = 1


def write_npz(batch: TransitionBatch, path: Path, schema: TransitionSchema) -> Path:
    """Write `batch` (already in `schema`'s dtypes) to `path` atomically; return the path.

    The caller decides whether an existing file may be replaced (`datasets.check_target`).
    """
    arrays = batch.arrays()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "schema": schema.model_dump(mode="json"),
        "infos": dict(batch.infos),
        "arrays": list(arrays),
    }
    members: dict[str, Any] = {META_KEY: np.array(json.dumps(meta))}
    members.update(arrays)
    staging = temporary_sibling(path)
    try:
        with staging.open("wb") as file:
            np.savez_compressed(file, **members)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    replace_atomically(staging, path)
    return path


def read_npz(path: Path) -> TransitionBatch:
    """The batch in a file `write_npz` wrote; ExperienceError saying what is wrong otherwise."""
    if not path.exists():
        raise ExperienceError(
            f"no experience file at {path}: check the path (write one with write_experience)"
        )
    if path.is_dir():
        raise ExperienceError(f"{path} is a directory, not a .npz experience file")
    if not zipfile.is_zipfile(path):
        # np.load would try the file as a pickle and suggest allow_pickle: polyrl never loads pickles.
        raise ExperienceError(
            f"{path} is not a polyrl experience file: it is not a valid .npz archive (a .npz file is a "
            "zip archive of arrays; polyrl never loads pickled data). Read .npz files written by "
            "write_experience, or write this data again with write_experience"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if META_KEY not in archive.files:
                raise ExperienceError(
                    f"{path} is a .npz file but not polyrl experience (it has no {META_KEY!r} member; "
                    f"its members are {sorted(archive.files)}): read files written by write_experience"
                )
            meta = _meta(path, archive[META_KEY])
            missing = [name for name in meta["arrays"] if name not in archive.files]
            if missing:
                raise ExperienceError(
                    f"{path} lacks the arrays {missing} its header lists: the file is truncated or "
                    "was edited; write it again"
                )
            arrays = {name: _member(path, archive, name) for name in meta["arrays"]}
    except ExperienceError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        # A broken archive: say so in polyrl's words (NumPy's may advise loading pickles).
        reason = (
            exc.strerror if isinstance(exc, OSError) and exc.strerror else "a damaged or truncated archive"
        )
        raise ExperienceError(
            f"{path} is not a readable polyrl experience file ({reason}): read .npz files written by "
            "write_experience, or write it again"
        ) from exc
    try:
        batch = TransitionBatch(**arrays, infos=meta["infos"])
    except ExperienceError as exc:
        raise ExperienceError(f"{path} holds arrays that do not form a batch: {exc}") from exc
    schema = meta["schema"]
    schema.check(batch.transition_schema(schema.action_kind), what=f"the arrays of {path}")
    return batch.conformed(schema)


def _member(path: Path, archive: Any, name: str) -> np.ndarray:
    """One array of the archive; ExperienceError for an object array (loading it would unpickle)."""
    try:
        array: np.ndarray = archive[name]
    except ValueError as exc:
        raise ExperienceError(
            f"{path} holds {name!r} as an object array (pickled Python objects), which polyrl never "
            "loads: write the arrays as numbers (write_experience does)"
        ) from exc
    return array


def _meta(path: Path, member: np.ndarray) -> dict[str, Any]:
    """The parsed header of a file, with its schema as a TransitionSchema."""
    try:
        meta = json.loads(str(member))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else meta!r}")
        if int(meta.get("version", 0)) > VERSION:
            raise ExperienceError(
                f"{path} is polyrl experience format version {meta['version']}, newer than this "
                f"polyrl reads ({VERSION}): upgrade polyrl"
            )
        schema = TransitionSchema.model_validate(meta["schema"])
        names = [str(name) for name in meta["arrays"]]
        unknown = [name for name in names if name not in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)]
        missing = [name for name in REQUIRED_FIELDS if name not in names]
        if unknown or missing:
            raise ValueError(f"arrays {names} (unknown {unknown}, missing {missing})")
        infos = {str(key): str(value) for key, value in dict(meta.get("infos", {})).items()}
    except ExperienceError:
        raise
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ExperienceError(
            f"{path} has a malformed {META_KEY!r} header ({exc}): the file was not written by "
            "write_experience or was edited; write it again"
        ) from exc
    return {"schema": schema, "arrays": names, "infos": infos}
