"""The off-policy replay buffer in a checkpoint: one .npz of plain arrays, no pickle.

Tianshou's VectorReplayBuffer is one flat `_meta` batch cut into per-env parts; the file keeps
the transitions (observations in the env's dtype: uint8 images stay uint8), each part's insertion
index, size and last index, and the RandomState of every buffer that samples minibatches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from polyrl.driverkit import legacy_random_state, restore_legacy_random_state
from polyrl.errors import CorruptCheckpointError
from tianshou.data import Batch, VectorReplayBuffer

#: buffer fields the replay file keeps (info and policy extras are not used by these algorithms)
BUFFER_KEYS = ("obs", "act", "rew", "terminated", "truncated", "done", "obs_next")


def samplers(buffer: VectorReplayBuffer) -> list[Any]:
    """The replay buffers whose own RandomState draws minibatch indices (saved with the buffer)."""
    return [buffer, *buffer.buffers]


def save_buffer(buffer: VectorReplayBuffer, path: Path) -> None:
    """Write the buffer's transitions, positions and sampler states to `path`."""
    # Typed as a plain mapping: mypy would otherwise match a key against savez's allow_pickle.
    arrays: dict[str, Any] = {f"data_{key}": np.asarray(buffer._meta[key]) for key in BUFFER_KEYS}
    arrays["insertion_index"] = np.array([b._insertion_idx for b in buffer.buffers])
    arrays["size"] = np.array([b._size for b in buffer.buffers])
    arrays["last_index"] = np.asarray(buffer.last_index)
    for index, owner in enumerate(samplers(buffer)):
        arrays.update(legacy_random_state(owner._random_state, f"sampler{index}"))
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def load_buffer(buffer: VectorReplayBuffer, path: Path) -> None:
    """Fill an empty buffer of the spec's size from a file `save_buffer` wrote."""
    with np.load(path, allow_pickle=False) as saved:
        data = {key: saved[f"data_{key}"] for key in BUFFER_KEYS}
        if len(data["obs"]) != buffer.maxsize or len(saved["size"]) != buffer.buffer_num:
            raise CorruptCheckpointError(
                f"{path} holds a buffer of {len(data['obs'])} transitions in {len(saved['size'])} "
                f"parts, but the spec makes {buffer.maxsize} in {buffer.buffer_num}"
            )
        buffer._meta = Batch(**data)
        buffer._set_batch_for_children()
        for index, part in enumerate(buffer.buffers):
            part._insertion_idx = int(saved["insertion_index"][index])
            part._size = int(saved["size"][index])
            offset = int(buffer._offset[index])
            part.last_index = np.array([int(saved["last_index"][index]) - offset])
            # The envs restart after load: end the saved partial episode so that the next
            # transition starts a new one (for n-step returns and episode statistics).
            if part._size > 0 and not part.done[part.last_index[0]]:
                part.truncated[part.last_index[0]] = True
                part.done[part.last_index[0]] = True
            part._ep_return, part._ep_len, part._ep_start_idx = 0.0, 0, part._insertion_idx
        buffer.last_index = np.asarray(saved["last_index"]).copy()
        buffer._lengths = np.array([len(part) for part in buffer.buffers])
        for index, owner in enumerate(samplers(buffer)):
            if f"sampler{index}_keys" in saved.files:
                restore_legacy_random_state(owner._random_state, saved, f"sampler{index}")
