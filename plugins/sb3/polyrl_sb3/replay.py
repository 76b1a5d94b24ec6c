"""SB3's replay buffer as NumPy arrays (no pickle): its filled rows, position and fullness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from polyrl_sb3.archive import REPLAY_FILE, SPEC_CHANGED, STATE_FILE, Arrays, corrupt

_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _replay_fields(buffer: Any) -> dict[str, np.ndarray]:
    """The buffer's arrays by name; a DictReplayBuffer's observations as `observations/<key>`."""
    found = {}
    for field in _FIELDS:
        value = getattr(buffer, field, None)
        if isinstance(value, dict):
            found.update({f"{field}/{key}": array for key, array in value.items()})
        elif isinstance(value, np.ndarray):  # next_observations is None with optimize_memory_usage
            found[field] = value
    return found


def _filled_rows(buffer_size: int, pos: int, full: bool) -> int:
    # Row `pos` is kept too: with optimize_memory_usage it holds the last transition's next obs.
    return buffer_size if full else min(pos + 1, buffer_size)


def write_replay(buffer: Any, directory: Path) -> dict[str, Any]:
    """Write the buffer's filled rows to the .npz; return what the JSON keeps (position, sizes)."""
    rows = _filled_rows(buffer.buffer_size, buffer.pos, buffer.full)
    fields = _replay_fields(buffer)
    # Typed Any: mypy would match a key of a **dict[str, ndarray] against savez's allow_pickle.
    arrays: dict[str, Any] = {name: array[:rows] for name, array in fields.items()}
    np.savez(directory / REPLAY_FILE, **arrays)
    return {
        "buffer_size": int(buffer.buffer_size),
        "n_envs": int(buffer.n_envs),
        "pos": int(buffer.pos),
        "full": bool(buffer.full),
        "arrays": sorted(fields),
    }


def restore_replay(buffer: Any, meta: Any, directory: Path) -> None:
    """Fill `buffer` (built from the spec, empty) with the saved rows, after checking they fit it."""
    if not isinstance(meta, dict):
        raise corrupt(STATE_FILE, "replay: expected an object")
    size, n_envs, pos, full = (meta.get(k) for k in ("buffer_size", "n_envs", "pos", "full"))
    if (size, n_envs) != (buffer.buffer_size, buffer.n_envs):
        raise corrupt(
            STATE_FILE,
            f"replay buffer of {size} x {n_envs} envs, the model built from the spec has "
            f"{buffer.buffer_size} x {buffer.n_envs}: {SPEC_CHANGED}",
        )
    if not (
        isinstance(size, int)
        and isinstance(pos, int)
        and not isinstance(pos, bool)
        and 0 <= pos < size
        and isinstance(full, bool)
    ):
        raise corrupt(STATE_FILE, f"replay position {pos!r} / full {full!r} is invalid")
    rows = _filled_rows(size, pos, full)
    fields = _replay_fields(buffer)
    with Arrays(directory, REPLAY_FILE) as arrays:
        if arrays.names != fields.keys():
            raise corrupt(
                REPLAY_FILE, f"holds {sorted(arrays.names)}, the buffer has {sorted(fields)}: {SPEC_CHANGED}"
            )
        for name, target in fields.items():
            saved = arrays.get(name)
            if saved.shape != (rows, *target.shape[1:]) or saved.dtype != target.dtype:
                raise corrupt(
                    REPLAY_FILE,
                    f"{name} is {saved.shape} {saved.dtype}, expected {(rows, *target.shape[1:])} "
                    f"{target.dtype}: {SPEC_CHANGED}",
                )
            target[:rows] = saved
    buffer.pos, buffer.full = pos, full
