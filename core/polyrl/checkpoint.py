"""Atomic checkpoint directories: written aside, verified on read, never half-loaded."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from polyrl.errors import CheckpointError, CheckpointNotFoundError, CorruptCheckpointError
from polyrl.manifest import MANIFEST_NAME, NATIVE_DIR, CheckpointManifest, FileEntry

_RENAME_EXCHANGE = 2


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(native_dir: Path) -> dict[str, FileEntry]:
    """Size and hash of every file below `native_dir`, by POSIX relative path."""
    return {
        path.relative_to(native_dir).as_posix(): FileEntry(size=path.stat().st_size, sha256=_sha256(path))
        for path in sorted(native_dir.rglob("*"))
        if path.is_file()
    }


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def write_checkpoint(
    path: Path,
    write_native: Callable[[Path], None],
    make_manifest: Callable[[dict[str, FileEntry]], CheckpointManifest],
) -> CheckpointManifest:
    """Write a checkpoint to `path` so that a crash at any point leaves the old one intact.

    Everything is written into a sibling temporary directory and flushed to disk; then it
    replaces `path` in one atomic exchange (or, where the OS lacks it, two renames with the old
    checkpoint kept under a ".old-" name until the new one is in place).
    """
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save to {path}: it exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST_NAME).is_file():
        raise CheckpointError(
            f"refusing to save over {path}: it is a non-empty directory that is not a polyrl "
            "checkpoint; choose another path or empty it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = path.parent / f".{path.name}.tmp-{token}"
    staging.mkdir()
    try:
        native = staging / NATIVE_DIR
        native.mkdir()
        write_native(native)
        manifest = make_manifest(describe_files(native))
        (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
        _fsync_tree(staging)
        if not path.exists():
            os.rename(staging, path)
        elif _exchange(staging, path):
            shutil.rmtree(staging)  # staging now holds the previous checkpoint
        else:
            backup = path.parent / f".{path.name}.old-{token}"
            os.rename(path, backup)
            os.rename(staging, path)
            shutil.rmtree(backup)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_manifest(path: Path) -> CheckpointManifest:
    """The manifest of the checkpoint at `path`, after checking every native file against it."""
    path = Path(path)
    if not path.exists():
        leftovers = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.exists() else []
        hint = f"; an interrupted save left {leftovers[0]}, rename it to {path}" if leftovers else ""
        raise CheckpointNotFoundError(f"no checkpoint at {path}: the directory does not exist{hint}")
    if not path.is_dir():
        raise CorruptCheckpointError(f"{path} is a file; a polyrl checkpoint is a directory")
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CorruptCheckpointError(
            f"{path} is not a polyrl checkpoint: it has no {MANIFEST_NAME}. Point to a directory "
            "written by Agent.save() or `polyrl train --out`."
        )
    try:
        raw = json.loads(manifest_path.read_text())
        manifest = CheckpointManifest.model_validate(raw)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise CorruptCheckpointError(
            f"{manifest_path} is unreadable or not a polyrl manifest: {exc}"
        ) from exc
    native = path / NATIVE_DIR
    for name, entry in manifest.files.items():
        file = native / name
        if not file.is_file():
            raise CorruptCheckpointError(f"checkpoint {path} is incomplete: {NATIVE_DIR}/{name} is missing")
        if file.stat().st_size != entry.size or _sha256(file) != entry.sha256:
            raise CorruptCheckpointError(
                f"checkpoint {path} is damaged: {NATIVE_DIR}/{name} does not match its recorded "
                "size and hash (truncated or edited); restore it from a backup"
            )
    return manifest
