"""RLlib replay buffers in a polyrl checkpoint as NumPy arrays plus JSON: nothing is pickled.

RLlib's new-stack checkpoints leave the DQN/SAC replay buffer out; its buffers do offer
`get_state()`/`set_state()`, whose state is a tree of dicts, lists, tuples, scalars and NumPy
arrays (every stored episode's observations, actions, rewards, model outputs, infos and ids,
the sampling index, counters). `write_state` stores such a tree as two files:

- `replay_buffer.npz`: the arrays, concatenated per place in the tree (all episodes'
  observations form one array, with the offsets where each starts), so a buffer of many
  episodes is a handful of large arrays, loaded with `allow_pickle=False`;
- `replay_buffer.json`: the tree with references into those arrays, tags for tuples and NumPy
  scalars, and long integer or float lists (sampling indices, segment trees) moved to arrays.

Gymnasium spaces inside the state (RLlib serializes them with its own helper, which loads
with `allow_pickle=True`) are written as "the env's observation space" / "the env's action
space" and rebuilt from the spaces the driver knows. Info values that are neither JSON nor
NumPy are dropped (DQN and SAC do not learn from infos): `write_state` returns how many.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from polyrl.errors import CorruptCheckpointError

FORMAT = 1

_ARRAY, _SCALAR, _TUPLE, _DICT = "__array__", "__scalar__", "__tuple__", "__dict__"
_INTS, _FLOATS, _INT_TUPLES, _SPACE, _OBJECTS = (
    "__ints__",
    "__floats__",
    "__int_tuples__",
    "__space__",
    "__objects__",
)
_TAGS = {_ARRAY, _SCALAR, _TUPLE, _DICT, _INTS, _FLOATS, _INT_TUPLES, _SPACE, _OBJECTS}
#: Keys under which RLlib keeps a serialized gymnasium space (episodes and lookback buffers).
_SPACE_KEYS = {"space", "_observation_space", "_action_space"}
#: Lists shorter than this stay JSON lists.
_LIST_TO_ARRAY = 8
_INT64 = (-(2**63), 2**63 - 1)


class _Unencodable(TypeError):
    """A value that is neither JSON nor NumPy (reported with where it was in the state)."""


class _Writer:
    """Turns a state tree into JSON plus grouped arrays."""

    def __init__(self, spaces: dict[str, Any]) -> None:
        self.spaces = spaces  # "observation"/"action" -> RLlib's dict form of that space
        self.groups: dict[tuple, list[np.ndarray]] = {}
        self.dropped_infos = 0

    def array(self, path: tuple[str, ...], value: np.ndarray) -> list[int]:
        key = (path, value.dtype.str, value.ndim, value.shape[1:])
        group = self.groups.setdefault(key, [])
        group.append(value)
        return [list(self.groups).index(key), len(group) - 1]

    def encode(self, value: Any, path: tuple[str, ...]) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return value
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                if value.ndim != 1:
                    raise _Unencodable(f"{'/'.join(path)}: an object array of {value.ndim} dimensions")
                return {_OBJECTS: [self.encode(item, (*path, "*")) for item in value.tolist()]}
            return {_ARRAY: self.array(path, value)}
        if isinstance(value, np.generic):
            if value.dtype.hasobject:
                raise _Unencodable(f"{'/'.join(path)}: a NumPy object scalar")
            return {_SCALAR: [value.dtype.str, value.item()]}
        if isinstance(value, tuple):
            return {_TUPLE: [self.encode(item, (*path, "*")) for item in value]}
        if isinstance(value, list):
            return self._list(value, path)
        if isinstance(value, dict):
            return self._dict(value, path)
        raise _Unencodable(f"{'/'.join(path)}: a {type(value).__name__}")

    def _list(self, value: list, path: tuple[str, ...]) -> Any:
        if len(value) >= _LIST_TO_ARRAY:
            if all(type(item) is int for item in value) and _fits_int64(value):
                return {_INTS: self.array(path, np.asarray(value, dtype=np.int64))}
            if all(type(item) is float for item in value):
                return {_FLOATS: self.array(path, np.asarray(value, dtype=np.float64))}
            first = value[0]
            if (
                type(first) is tuple
                and all(type(item) is tuple and len(item) == len(first) for item in value)
                and all(type(x) is int for item in value for x in item)
                and _fits_int64([x for item in value for x in item])
            ):
                array = np.asarray(value, dtype=np.int64).reshape(len(value), len(first))
                return {_INT_TUPLES: self.array(path, array)}
        if path[-2:] == ("infos", "data"):
            return [self._info(item, (*path, "*")) for item in value]
        return [self.encode(item, (*path, "*")) for item in value]

    def _info(self, item: Any, path: tuple[str, ...]) -> Any:
        try:
            return self.encode(item, path)
        except _Unencodable:
            self.dropped_infos += 1
            return {}

    def _dict(self, value: dict, path: tuple[str, ...]) -> Any:
        plain = all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and next(iter(value)) in _TAGS
        )
        if not plain:
            return {
                _DICT: [
                    [self.encode(k, (*path, "<key>")), self.encode(v, (*path, "*"))] for k, v in value.items()
                ]
            }
        encoded = {}
        for key, item in value.items():
            if key in _SPACE_KEYS and isinstance(item, dict) and isinstance(item.get("space"), str):
                encoded[key] = {_SPACE: next((name for name, d in self.spaces.items() if d == item), None)}
            else:
                encoded[key] = self.encode(item, (*path, key))
        return encoded


def _fits_int64(values: list[int]) -> bool:
    return all(_INT64[0] <= v <= _INT64[1] for v in values)


class _Reader:
    """Rebuilds a state tree from the JSON document and the arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], groups: list[dict[str, Any]]) -> None:
        self.arrays = arrays
        self.groups = groups
        #: Where the state had a space (decoded as None, as RLlib's from_state accepts), and which.
        self.spaces: list[tuple[tuple[Any, ...], str]] = []

    def array(self, reference: Any) -> np.ndarray:
        if not (
            isinstance(reference, list) and len(reference) == 2 and all(type(x) is int for x in reference)
        ):
            raise CorruptCheckpointError(f"replay buffer: bad array reference {reference!r}")
        group, index = reference
        if not 0 <= group < len(self.groups):
            raise CorruptCheckpointError(f"replay buffer: no array group {group}")
        data = self.arrays[f"g{group}"]
        if self.groups[group]["ndim"] == 0:
            return data[index : index + 1].reshape(())
        offsets = self.arrays[f"g{group}_offsets"]
        if not 0 <= index < len(offsets) - 1:
            raise CorruptCheckpointError(f"replay buffer: no entry {index} in array group {group}")
        return data[offsets[index] : offsets[index + 1]]

    def decode(self, value: Any, path: tuple[Any, ...] = ()) -> Any:
        if isinstance(value, list):
            return [self.decode(item, (*path, i)) for i, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            tag, content = next(iter(value.items()))
            if tag == _ARRAY:
                return self.array(content)
            if tag == _INTS:
                return [int(x) for x in self.array(content).tolist()]
            if tag == _FLOATS:
                return [float(x) for x in self.array(content).tolist()]
            if tag == _INT_TUPLES:
                return [tuple(row) for row in self.array(content).tolist()]
            if tag == _SCALAR:
                dtype, item = content
                return np.asarray(item, dtype=np.dtype(dtype))[()]
            if tag == _TUPLE:
                return tuple(self.decode(item) for item in content)
            if tag == _DICT:
                return {_hashable(self.decode(k)): self.decode(v) for k, v in content}
            if tag == _OBJECTS:
                items = [self.decode(item) for item in content]
                array = np.empty(len(items), dtype=object)
                for i, item in enumerate(items):
                    array[i] = item
                return array
            if tag == _SPACE:
                if content is not None:
                    self.spaces.append((path, str(content)))
                return None
        return {key: self.decode(item, (*path, key)) for key, item in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def write_state(
    state: Any, directory: Path, spaces: dict[str, Any], extra: dict[str, Any], stem: str = "replay_buffer"
) -> int:
    """Write a buffer's `get_state()` tree (and `extra`, JSON) into `directory`; return dropped infos.

    `spaces` maps "observation"/"action" to RLlib's dict form of the env's spaces
    (`gym_space_to_dict`): a space in the state equal to one of them is written by that name.
    Any other state tree of dicts, lists and arrays can be written too, under another `stem`.
    """
    writer = _Writer(spaces)
    try:
        tree = writer.encode(state, ())
    except _Unencodable as exc:
        raise CorruptCheckpointError(f"cannot save the replay buffer without pickle: {exc}") from exc
    arrays: dict[str, Any] = {}  # not dict[str, ndarray]: mypy would match a key against savez's allow_pickle
    groups = []
    for index, ((path, dtype, ndim, _), members) in enumerate(writer.groups.items()):
        groups.append({"path": "/".join(path), "dtype": dtype, "ndim": ndim})
        if ndim == 0:
            arrays[f"g{index}"] = np.stack(members)
        else:
            arrays[f"g{index}"] = np.concatenate(members, axis=0)
            arrays[f"g{index}_offsets"] = np.cumsum([0, *(len(m) for m in members)], dtype=np.int64)
    np.savez(directory / f"{stem}.npz", **arrays)
    document = {"format": FORMAT, "groups": groups, "state": tree, "extra": extra}
    (directory / f"{stem}.json").write_text(json.dumps(document))
    return writer.dropped_infos


def has_state(directory: Path, stem: str = "replay_buffer") -> bool:
    """Whether `directory` holds a saved replay buffer (or another tree saved under `stem`)."""
    return (directory / f"{stem}.json").is_file()


def read_state(
    directory: Path, stem: str = "replay_buffer"
) -> tuple[Any, dict[str, Any], list[tuple[tuple[Any, ...], str]]]:
    """The state tree and `extra` that `write_state` wrote, and where the state had which space.

    Spaces come back as None (RLlib's `from_state` accepts that); put them back with
    `restore_spaces` once the buffer holds the episodes.
    """
    try:
        document = json.loads((directory / f"{stem}.json").read_text())
        if document.get("format") != FORMAT:
            raise CorruptCheckpointError(
                f"{directory / f'{stem}.json'}: format {document.get('format')!r}, expected {FORMAT}"
            )
        with np.load(directory / f"{stem}.npz", allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        reader = _Reader(arrays, document["groups"])
        return reader.decode(document["state"]), document.get("extra", {}), reader.spaces
    except CorruptCheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptCheckpointError(
            f"cannot read the replay buffer in {directory}: {type(exc).__name__}: {exc}"
        ) from exc


def restore_spaces(buffer: Any, places: list[tuple[tuple[Any, ...], str]], spaces: dict[str, Any]) -> None:
    """Set the spaces `read_state` found on the buffer's episodes (and their lookback buffers).

    A place is a path in the state, e.g. ("episodes", 3, "observations", "space"): the episode
    objects of `buffer.episodes` stand for the state's episode dicts, then attributes (or keys,
    for `extra_model_outputs`) lead to the object whose attribute is set.
    """
    episodes = list(getattr(buffer, "episodes", []))
    for path, name in places:
        if len(path) < 3 or path[0] != "episodes" or name not in spaces:
            continue
        index = path[1]
        if not isinstance(index, int) or not 0 <= index < len(episodes):
            continue
        target: Any = episodes[index]
        for step in path[2:-1]:
            target = target[step] if isinstance(target, dict) else getattr(target, step)
        setattr(target, path[-1], spaces[name])
