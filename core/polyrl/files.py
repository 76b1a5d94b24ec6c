"""Writing files safely, the one place polyrl does it: fail-fast writability checks, atomic
replacement of a file through a hidden sibling, and fsync.

Callbacks, experiments, the benchmark and checkpoints (core/polyrl/checkpoint.py, which swaps
whole directories) all write through these helpers.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from polyrl.errors import ConfigurationError


def writable_dir(path: str | Path, owner: str) -> Path:
    """Create `path` if needed and prove it is writable with a probe file; return it absolute.

    Called from on_train_begin so a bad directory fails before training, not after an hour.
    """
    path = Path(path).expanduser().absolute()
    probe = path / f".polyrl-write-probe-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"{owner} cannot write to the directory {path}: {exc.strerror or exc}. Choose a directory "
            "you can write to, or fix its permissions."
        ) from exc
    return path


def writable_file(path: str | Path, owner: str) -> Path:
    """Check that the file `path` can be (re)written: its directory is writable, it is no directory."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise ConfigurationError(f"{owner} writes the file {path}, but that path is a directory")
    writable_dir(path.parent, owner)
    return path


def temporary_sibling(path: Path) -> Path:
    """A hidden unique name beside `path` that keeps its suffix (writers pick formats by suffix)."""
    return path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")


def fsync_path(path: Path) -> None:
    """Flush a file or a directory entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(staging: Path, path: Path) -> None:
    """Flush `staging` to disk and rename it onto `path` (readers see the old or the new file)."""
    try:
        fsync_path(staging)
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary sibling, so a crash never leaves half a file."""
    staging = temporary_sibling(path)
    staging.write_text(text, encoding="utf-8")
    replace_atomically(staging, path)
