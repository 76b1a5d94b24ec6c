"""An SB3 model's training state as JSON and NumPy arrays: nothing polyrl reads back can run code.

SB3's own `model.save` zip stores its attributes as cloudpickle payloads and its replay buffer
as a pickle; both run code when loaded. polyrl instead writes, in the checkpoint's native/:

- `polyrl_sb3.json`: format tag, algorithm, iteration size, the action space's generator, the
  counters SB3 continues from (num_timesteps, _n_updates, _n_calls, _episode_num, progress,
  exploration rate, learning rate), the episode-info buffers, the layout of the torch state
  (which state dicts and variables, optimizer hyperparameters) and of the replay buffer;
- `polyrl_sb3_tensors.npz`: every tensor of what SB3's zip holds as torch state
  (`_get_torch_save_params`: the policy's state dict with target networks, each optimizer's
  state dict, SAC's log_ent_coef), named by path, e.g. `policy.optimizer/state/3/exp_avg`;
- `polyrl_sb3_replay.npz` (off-policy): the replay buffer's arrays up to its filled rows.

Both .npz files are read with `np.load(allow_pickle=False)`. The model itself is rebuilt from the
spec, so these files carry state, never classes. `_last_obs` is not kept: as SB3's own load with
an env does (force_reset), a loaded model resets its envs at its next learn().
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from polyrl.errors import CorruptCheckpointError

FORMAT = "polyrl-sb3"
FORMAT_VERSION = 1
STATE_FILE = "polyrl_sb3.json"
TENSORS_FILE = "polyrl_sb3_tensors.npz"
REPLAY_FILE = "polyrl_sb3_replay.npz"
SPEC_CHANGED = "spec changed, or the file edited?"


def corrupt(file: str, problem: str) -> CorruptCheckpointError:
    """The error for a native file that is missing, unreadable or does not fit the model."""
    return CorruptCheckpointError(f"sb3 checkpoint file native/{file}: {problem}")


def read_state(directory: Path, algorithm: str) -> dict[str, Any] | None:
    """The checked state file, or None when `directory` holds none of this format (an earlier one?)."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(STATE_FILE, f"unreadable JSON ({exc})") from exc
    if not isinstance(state, dict):
        raise corrupt(STATE_FILE, f"expected a JSON object, found {type(state).__name__}")
    if "format" not in state:  # the earlier format's file held only iteration_steps and a generator
        return None
    if (state["format"], state.get("format_version")) != (FORMAT, FORMAT_VERSION):
        raise corrupt(
            STATE_FILE,
            f"format {state['format']!r} version {state.get('format_version')!r}; this polyrl "
            f"reads {FORMAT!r} version {FORMAT_VERSION}: load it with the polyrl that wrote it",
        )
    if state.get("algorithm") != algorithm:
        raise corrupt(STATE_FILE, f"written for {state.get('algorithm')!r}, the spec says {algorithm!r}")
    chunk = state.get("iteration_steps")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise corrupt(STATE_FILE, f"iteration_steps {chunk!r} is not a positive int")
    return state


class Arrays:
    """An .npz opened without pickle whose every failure names the file."""

    def __init__(self, directory: Path, file: str) -> None:
        self.file = file
        try:
            self._npz = np.load(directory / file, allow_pickle=False)
        except FileNotFoundError as exc:
            raise corrupt(file, "missing") from exc
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise corrupt(file, f"not a readable .npz (truncated or edited?): {exc}") from exc
        if not isinstance(self._npz, np.lib.npyio.NpzFile):
            raise corrupt(file, "a single array, not an .npz archive")

    def __enter__(self) -> Arrays:
        return self

    def __exit__(self, *exc: object) -> None:
        self._npz.close()

    @property
    def names(self) -> set[str]:
        return set(self._npz.files)

    def get(self, name: str) -> np.ndarray:
        if name not in self._npz.files:
            raise corrupt(self.file, f"has no array {name!r}")
        try:
            return self._npz[name]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise corrupt(self.file, f"array {name!r} is unreadable (truncated or edited?): {exc}") from exc
