"""Atomic checkpoint directories: written aside, verified on read, never half-loaded."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from polyrl.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointWriteError,
    CorruptCheckpointError,
)
from polyrl.files import fsync_path
from polyrl.manifest import (
    MANIFEST_NAME,
    NATIVE_DIR,
    SUPPORTED_FORMAT_VERSIONS,
    CheckpointManifest,
    FileEntry,
)

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_SHOWN = 10  # foreign files named in an error message


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
        fsync_path(path)


def _renameat2(a: Path, b: Path, flags: int) -> int | None:
    """renameat2(a, b, flags): 0 on success, else the errno; None where the call is unavailable."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return None
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flags) == 0:
        return 0
    return ctypes.get_errno()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    return _renameat2(a, b, _RENAME_EXCHANGE) == 0


def _rename_noreplace(source: Path, target: Path) -> None:
    """Rename `source` to `target`, failing with FileExistsError if `target` appeared meanwhile."""
    result = _renameat2(source, target, _RENAME_NOREPLACE)
    if result == 0:
        return
    if result == errno.EEXIST:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    if result not in (None, errno.EINVAL, errno.ENOSYS):
        raise OSError(result, os.strerror(result), str(target))
    os.rename(source, target)  # no RENAME_NOREPLACE here: rename refuses a non-empty target


def _staging_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.tmp-[0-9a-f]{{8}}")


def _lock(directory: Path) -> int | None:
    """An fd holding an exclusive flock on `directory` (released when the process dies), or None
    where flock is unavailable; raises BlockingIOError if another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_stale_staging(path: Path) -> list[Path]:
    """Remove the staging dirs of saves to `path` that were killed (their flock is gone)."""
    pattern = _staging_pattern(path.name)
    removed: list[Path] = []
    for entry in path.parent.iterdir():
        if not pattern.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            fd = _lock(entry)
        except BlockingIOError:
            continue  # a live save in another process
        except OSError:
            continue  # gone meanwhile, or not ours to open
        if fd is None:
            return removed
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _native_inventory(native: Path) -> tuple[list[str], list[str]]:
    """(symbolic links, regular files) below `native`, as POSIX paths relative to it."""
    links: list[str] = []
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(native):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            entry = here / name
            relative = entry.relative_to(native).as_posix()
            if entry.is_symlink():
                links.append(relative)
            elif name in filenames:
                files.append(relative)
    return sorted(links), sorted(files)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _check_replaceable(path: Path) -> None:
    """Refuse unless `path` is empty or a polyrl checkpoint holding only what its manifest lists."""
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        return
    manifest_path = path / MANIFEST_NAME
    reason = None
    if manifest_path.is_symlink() or not manifest_path.is_file():
        reason = f"it has no {MANIFEST_NAME}"
    else:
        try:
            manifest = CheckpointManifest.model_validate_json(manifest_path.read_bytes())
        except ValueError:
            reason = f"its {MANIFEST_NAME} is not a manifest this polyrl wrote or can read"
    if reason is not None:
        raise CheckpointError(
            f"refusing to save over {path}: it is a non-empty directory that is not a polyrl "
            f"checkpoint ({reason}); it holds {_listing(entries)}. Choose another path, or move "
            "those files away first; polyrl never deletes files it did not write"
        )
    native = path / NATIVE_DIR
    own_native = native.is_dir() and not native.is_symlink()
    foreign = [name for name in entries if name != MANIFEST_NAME and not (name == NATIVE_DIR and own_native)]
    if own_native:
        links, files = _native_inventory(native)
        foreign += [f"{NATIVE_DIR}/{name}" for name in links]
        foreign += [f"{NATIVE_DIR}/{name}" for name in files if name not in manifest.files]
    if foreign:
        raise CheckpointError(
            f"refusing to save over the checkpoint {path}: it also holds files its manifest does not "
            f"list: {_listing(sorted(foreign))}. Move them elsewhere (saving replaces the whole "
            "directory), or save to another path"
        )


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason} ({exc.filename})" if exc.filename else reason


def write_checkpoint(
    path: Path,
    write_native: Callable[[Path], None],
    make_manifest: Callable[[dict[str, FileEntry]], CheckpointManifest],
) -> CheckpointManifest:
    """Write a checkpoint to `path` so that a crash at any point leaves the old one intact.

    Everything is written into a sibling temporary directory and flushed to disk; then it
    replaces `path` in one atomic exchange (or, where the OS lacks it, two renames with the old
    checkpoint kept under a ".old-" name until the new one is in place). Only an empty directory
    or a polyrl checkpoint holding nothing but what its manifest lists is replaced; a symbolic
    link at `path` is refused. OS errors become CheckpointWriteError naming the path.
    """
    path = Path(path).absolute()
    try:
        return _write_checkpoint(path, write_native, make_manifest)
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointWriteError(
            f"cannot save the checkpoint to {path}: {_os_reason(exc)}. Check that the directory is "
            "writable, that no file stands where a directory should be, and that the disk has space"
        ) from exc


def _write_checkpoint(
    path: Path,
    write_native: Callable[[Path], None],
    make_manifest: Callable[[dict[str, FileEntry]], CheckpointManifest],
) -> CheckpointManifest:
    if path.is_symlink():
        raise CheckpointError(
            f"refusing to save to {path}: it is a symbolic link (to {os.readlink(path)}); polyrl "
            f"would replace the link, not its target. Save to the real path ({path.resolve()}) "
            "or remove the link"
        )
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save to {path}: it exists and is not a directory")
    existed = path.is_dir()
    if existed:
        _check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(path)
    token = uuid.uuid4().hex[:8]
    staging = path.parent / f".{path.name}.tmp-{token}"
    staging.mkdir()
    lock = None
    try:
        lock = _lock(staging)
        native = staging / NATIVE_DIR
        native.mkdir()
        write_native(native)
        manifest = make_manifest(describe_files(native))
        (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
        _fsync_tree(staging)
        # Only a directory checked above is replaced: one that appeared since is another save's.
        if not existed or not path.exists():
            try:
                _rename_noreplace(staging, path)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                raise CheckpointError(
                    f"cannot save to {path}: another save created it while this one was writing "
                    "(two saves to one path at once); this save was discarded and the other's "
                    "checkpoint is complete. Save again to replace it, or give each process its own path"
                ) from exc
        elif _exchange(staging, path):
            shutil.rmtree(staging, ignore_errors=True)  # staging now holds the previous checkpoint
        else:
            backup = path.parent / f".{path.name}.old-{token}"
            os.rename(path, backup)
            os.rename(staging, path)
            shutil.rmtree(backup)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    return manifest


def read_manifest(path: Path) -> CheckpointManifest:
    """The manifest of the checkpoint at `path`, after checking every native file against it.

    Refused as corrupt: an unknown format version, a manifest that contradicts itself (backend,
    negative counters, file names outside native/), symbolic links, native files the manifest
    does not list, and listed files that are missing or differ from their size and hash.
    """
    path = Path(path)
    if not path.exists():
        leftovers = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.exists() else []
        hint = f"; an interrupted save left {leftovers[0]}, rename it to {path}" if leftovers else ""
        raise CheckpointNotFoundError(f"no checkpoint at {path}: the directory does not exist{hint}")
    if not path.is_dir():
        raise CorruptCheckpointError(f"{path} is a file; a polyrl checkpoint is a directory")
    manifest_path = path / MANIFEST_NAME
    if manifest_path.is_symlink():
        raise CorruptCheckpointError(
            f"{manifest_path} is a symbolic link; a polyrl checkpoint holds regular files only. "
            "Copy the real file in its place if you trust it"
        )
    if not manifest_path.is_file():
        raise CorruptCheckpointError(
            f"{path} is not a polyrl checkpoint: it has no {MANIFEST_NAME}. Point to a directory "
            "written by Agent.save() or `polyrl train --out`."
        )
    try:
        raw = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(
            f"{manifest_path} is unreadable or not a polyrl manifest: {exc}"
        ) from exc
    version = raw.get("format_version", 1) if isinstance(raw, dict) else 1
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise CorruptCheckpointError(
            f"{manifest_path} has format_version {version!r} (written by polyrl "
            f"{raw.get('polyrl_version', '?')}); this polyrl reads format_version "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))} only. Load it with the polyrl that "
            f"wrote it, or re-save it from there"
        )
    try:
        manifest = CheckpointManifest.model_validate(raw)
    except ValidationError as exc:
        raise CorruptCheckpointError(
            f"{manifest_path} is unreadable or not a polyrl manifest: {exc}"
        ) from exc
    native = path / NATIVE_DIR
    if native.is_symlink():
        raise CorruptCheckpointError(
            f"checkpoint {path} is refused: {NATIVE_DIR}/ is a symbolic link; a checkpoint holds "
            "regular files only"
        )
    links, present = _native_inventory(native) if native.is_dir() else ([], [])
    if links:
        raise CorruptCheckpointError(
            f"checkpoint {path} is refused: {_listing([f'{NATIVE_DIR}/{n}' for n in links])} "
            "is a symbolic link (it could make the backend read files outside the checkpoint); "
            "replace links with the real files"
        )
    for name in manifest.files:
        file = native / name
        if not file.is_file():
            raise CorruptCheckpointError(f"checkpoint {path} is incomplete: {NATIVE_DIR}/{name} is missing")
    unlisted = [name for name in present if name not in manifest.files]
    if unlisted:
        raise CorruptCheckpointError(
            f"checkpoint {path} is damaged or tampered with: "
            f"{_listing([f'{NATIVE_DIR}/{n}' for n in unlisted])} is not listed in its "
            f"{MANIFEST_NAME}, so nothing vouches for it; remove it or restore the checkpoint from a backup"
        )
    for name, entry in manifest.files.items():
        file = native / name
        if file.stat().st_size != entry.size or _sha256(file) != entry.sha256:
            raise CorruptCheckpointError(
                f"checkpoint {path} is damaged: {NATIVE_DIR}/{name} does not match its recorded "
                "size and hash (truncated or edited); restore it from a backup"
            )
    return manifest
