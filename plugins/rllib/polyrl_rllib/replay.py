"""RLlib state trees in a polyrl checkpoint as NumPy arrays plus JSON: nothing is pickled.

RLlib's state (`get_state()`/`set_state()` of its Algorithm, Learners, RLModules, connectors and
replay buffers) is a tree of dicts, lists, tuples, scalars and NumPy arrays. RLlib's own
checkpoints pickle it; polyrl stores it with this module instead, so that loading runs no code.
`write_tree`/`read_tree` store any such tree exactly, and refuse at save time (naming the place
in the tree) a leaf they cannot represent. `write_state`/`read_state` store a replay buffer, which
RLlib's new-stack checkpoints leave out: every stored episode's observations, actions, rewards,
model outputs, infos and ids, the sampling index, counters. Either stores a tree as two files:

- `<stem>.npz`: the arrays, concatenated per place in the tree (all episodes' observations form
  one array, with the offsets where each starts), so a buffer of many episodes is a handful of
  large arrays, loaded with `allow_pickle=False`; torch tensors are stored as their arrays and
  come back as CPU tensors;
- `<stem>.json`: the tree with references into those arrays, tags for tuples, NumPy scalars and
  dicts with non-string keys, and long integer or float lists (sampling indices, segment trees)
  moved to arrays.

Only for replay buffers (`write_state`): gymnasium spaces inside the state (RLlib serializes
them with its own helper, which loads with `allow_pickle=True`) are written as "the env's
observation space" / "the env's action space" and rebuilt from the spaces the driver knows.
Info values that are neither JSON nor NumPy are dropped (DQN and SAC do not learn from infos):
`write_state` returns how many.
"""

from __future__ import annotations

import json
import sys
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from polyrl.errors import CheckpointError, CorruptCheckpointError

FORMAT = 1

_ARRAY, _SCALAR, _TUPLE, _DICT = "__array__", "__scalar__", "__tuple__", "__dict__"
_TENSOR, _ORDERED = "__tensor__", "__ordered_dict__"
_INTS, _FLOATS, _INT_TUPLES, _SPACE, _OBJECTS = (
    "__ints__",
    "__floats__",
    "__int_tuples__",
    "__space__",
    "__objects__",
)
_TAGS = {_ARRAY, _SCALAR, _TUPLE, _DICT, _TENSOR, _ORDERED, _INTS, _FLOATS, _INT_TUPLES, _SPACE, _OBJECTS}
#: The containers a strict writer keeps; subclasses (defaultdict, namedtuples) would lose their kind.
_CONTAINERS = (dict, OrderedDict, list, tuple)
#: Keys under which RLlib keeps a serialized gymnasium space (episodes and lookback buffers).
_SPACE_KEYS = {"space", "_observation_space", "_action_space"}
#: Lists shorter than this stay JSON lists.
_LIST_TO_ARRAY = 8
_INT64 = (-(2**63), 2**63 - 1)


class _Unencodable(TypeError):
    """A value that is neither JSON nor NumPy (reported with where it was in the state)."""


class _Writer:
    """Turns a state tree into JSON plus grouped arrays.

    Strict: every leaf is kept as it is (no infos dropped, spaces stay the dicts they are).
    """

    def __init__(self, spaces: dict[str, Any], strict: bool = False) -> None:
        self.spaces = spaces  # "observation"/"action" -> RLlib's dict form of that space
        self.strict = strict
        self.groups: dict[tuple, list[np.ndarray]] = {}
        self.dropped_infos = 0

    def array(self, path: tuple[str, ...], value: np.ndarray) -> list[int]:
        key = (path, value.dtype.str, value.ndim, value.shape[1:])
        group = self.groups.setdefault(key, [])
        group.append(value)
        return [list(self.groups).index(key), len(group) - 1]

    def encode(self, value: Any, path: tuple[str, ...]) -> Any:
        if value is None:
            return value
        if isinstance(value, np.generic | bool | int | float | str):
            return self._scalar(value, path)
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                if value.ndim != 1:
                    raise _Unencodable(f"{'/'.join(path)}: an object array of {value.ndim} dimensions")
                return {_OBJECTS: [self.encode(item, (*path, "*")) for item in value.tolist()]}
            return {_ARRAY: self.array(path, value)}
        if self.strict and isinstance(value, list | tuple | dict) and type(value) not in _CONTAINERS:
            raise _Unencodable(f"{'/'.join(path)}: a {_name(value)}, which would come back as its base type")
        if isinstance(value, tuple):
            return {_TUPLE: [self.encode(item, (*path, "*")) for item in value]}
        if isinstance(value, list):
            return self._list(value, path)
        if isinstance(value, OrderedDict):
            return {_ORDERED: self._dict(value, path)}
        if isinstance(value, dict):
            return self._dict(value, path)
        torch = sys.modules.get("torch")  # only a tree from a process that uses torch holds tensors
        if torch is not None and isinstance(value, torch.Tensor):
            try:
                array = value.detach().cpu().numpy()
            except (TypeError, RuntimeError) as exc:  # e.g. bfloat16, which NumPy lacks
                raise _Unencodable(f"{'/'.join(path)}: a torch tensor of dtype {value.dtype}") from exc
            return {_TENSOR: self.array(path, array)}
        raise _Unencodable(f"{'/'.join(path)}: a {_name(value)}")

    def _scalar(self, value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, np.generic):  # first: np.float64 is a float, np.str_ a str
            item = value.item()
            if value.dtype.hasobject or not isinstance(item, bool | int | float | str):
                raise _Unencodable(f"{'/'.join(path)}: a NumPy scalar of dtype {value.dtype}")
            return {_SCALAR: [value.dtype.str, item]}
        if self.strict and type(value) not in (bool, int, float, str):
            raise _Unencodable(f"{'/'.join(path)}: a {_name(value)}, which would come back as its base type")
        return value

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
        if path[-2:] == ("infos", "data") and not self.strict:
            return [self._info(item, (*path, "*")) for item in value]
        return [self.encode(item, (*path, "*")) for item in value]

    def _info(self, item: Any, path: tuple[str, ...]) -> Any:
        try:
            return self.encode(item, path)
        except _Unencodable:
            self.dropped_infos += 1
            return {}

    def _dict(self, value: dict, path: tuple[str, ...]) -> Any:
        plain = all(type(k) is str for k in value) and not (len(value) == 1 and next(iter(value)) in _TAGS)
        if not plain:
            return {
                _DICT: [
                    [self.encode(k, (*path, "<key>")), self.encode(v, (*path, "*"))] for k, v in value.items()
                ]
            }
        encoded = {}
        for key, item in value.items():
            if (
                not self.strict
                and key in _SPACE_KEYS
                and isinstance(item, dict)
                and isinstance(item.get("space"), str)
            ):
                encoded[key] = {_SPACE: next((name for name, d in self.spaces.items() if d == item), None)}
            else:
                encoded[key] = self.encode(item, (*path, key))
        return encoded


def _name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _fits_int64(values: list[int]) -> bool:
    return all(_INT64[0] <= v <= _INT64[1] for v in values)


class _Reader:
    """Rebuilds a state tree from the JSON document and the arrays (ValueError if they disagree)."""

    def __init__(self, arrays: dict[str, np.ndarray], groups: list[dict[str, Any]]) -> None:
        self.arrays = arrays
        self.groups = groups
        #: Where the state had a space (decoded as None, as RLlib's from_state accepts), and which.
        self.spaces: list[tuple[tuple[Any, ...], str]] = []

    def array(self, reference: Any) -> np.ndarray:
        if not (
            isinstance(reference, list) and len(reference) == 2 and all(type(x) is int for x in reference)
        ):
            raise ValueError(f"bad array reference {reference!r}")
        group, index = reference
        if not 0 <= group < len(self.groups):
            raise ValueError(f"no array group {group}")
        data = self.arrays[f"g{group}"]
        if self.groups[group]["ndim"] == 0:
            if not 0 <= index < len(data):
                raise ValueError(f"no entry {index} in array group {group}")
            return data[index : index + 1].reshape(())
        offsets = self.arrays[f"g{group}_offsets"]
        if not 0 <= index < len(offsets) - 1:
            raise ValueError(f"no entry {index} in array group {group}")
        return data[offsets[index] : offsets[index + 1]]

    def decode(self, value: Any, path: tuple[Any, ...] = ()) -> Any:
        if isinstance(value, list):
            return [self.decode(item, (*path, i)) for i, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            tag, content = next(iter(value.items()))
            if tag in self._ARRAY_TAGS:
                return self._decode_array(tag, content)
            if tag in (_TUPLE, _DICT, _ORDERED, _OBJECTS, _SPACE):
                return self._decode_container(tag, content, path)
        return {key: self.decode(item, (*path, key)) for key, item in value.items()}

    _ARRAY_TAGS = frozenset((_ARRAY, _TENSOR, _INTS, _FLOATS, _INT_TUPLES, _SCALAR))

    def _decode_array(self, tag: str, content: Any) -> Any:
        """A leaf stored in (or as) an array: arrays, tensors, numeric lists, NumPy scalars."""
        if tag == _SCALAR:
            dtype, item = content
            return np.asarray(item, dtype=np.dtype(dtype))[()]
        array = self.array(content)
        if tag == _TENSOR:
            import torch

            return torch.from_numpy(array.copy())
        if tag == _INTS:
            return [int(x) for x in array.tolist()]
        if tag == _FLOATS:
            return [float(x) for x in array.tolist()]
        if tag == _INT_TUPLES:
            return [tuple(row) for row in array.tolist()]
        return array

    def _decode_container(self, tag: str, content: Any, path: tuple[Any, ...]) -> Any:
        """Tuples, dicts with any keys, ordered dicts, object arrays and space placeholders."""
        if tag == _TUPLE:
            return tuple(self.decode(item) for item in content)
        if tag == _DICT:
            return {_hashable(self.decode(k)): self.decode(v) for k, v in content}
        if tag == _ORDERED:
            decoded = self.decode(content, path)
            if not isinstance(decoded, dict):
                raise ValueError(f"{_ORDERED} holds a {type(decoded).__name__}")
            return OrderedDict(decoded)
        if tag == _OBJECTS:
            items = [self.decode(item) for item in content]
            array = np.empty(len(items), dtype=object)
            for i, item in enumerate(items):
                array[i] = item
            return array
        if content is not None:  # _SPACE
            self.spaces.append((path, str(content)))
        return None


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _write(writer: _Writer, state: Any, directory: Path, stem: str, extra: dict[str, Any]) -> None:
    """Encode `state` with `writer` and write `<stem>.npz` and `<stem>.json` into `directory`."""
    tree = writer.encode(state, ())
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


def write_state(
    state: Any, directory: Path, spaces: dict[str, Any], extra: dict[str, Any], stem: str = "replay_buffer"
) -> int:
    """Write a buffer's `get_state()` tree (and `extra`, JSON) into `directory`; return dropped infos.

    `spaces` maps "observation"/"action" to RLlib's dict form of the env's spaces
    (`gym_space_to_dict`): a space in the state equal to one of them is written by that name.
    For other trees use `write_tree`, which keeps every leaf.
    """
    writer = _Writer(spaces)
    try:
        _write(writer, state, directory, stem, extra)
    except _Unencodable as exc:
        raise CorruptCheckpointError(f"cannot save the replay buffer without pickle: {exc}") from exc
    return writer.dropped_infos


def write_tree(tree: Any, directory: Path, stem: str, what: str, extra: dict[str, Any] | None = None) -> None:
    """Write a state tree (and `extra`, JSON) exactly, as `<stem>.npz` and `<stem>.json`.

    Leaves may be None, bools, ints, floats, strings, NumPy arrays and scalars, and torch
    tensors (read back as CPU tensors), in dicts (any such keys), lists and tuples. Anything
    else raises CheckpointError naming `what` and the leaf's place in the tree: nothing is
    dropped or pickled.
    """
    try:
        _write(_Writer({}, strict=True), tree, directory, stem, extra or {})
    except _Unencodable as exc:
        raise CheckpointError(
            f"cannot save {what} without pickle: {exc} (what can be stored: None, bools, numbers, "
            "strings, NumPy arrays and scalars and torch tensors, in dicts, lists and tuples)"
        ) from exc


def has_state(directory: Path, stem: str = "replay_buffer") -> bool:
    """Whether `directory` holds a saved replay buffer (or another tree saved under `stem`)."""
    return (directory / f"{stem}.json").is_file()


#: What reading a damaged `.npz` raises: truncated or edited zip members, bad headers, pickles.
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _read(directory: Path, stem: str, what: str) -> tuple[Any, dict[str, Any], _Reader]:
    """The tree, `extra` and reader of `<stem>.json` + `<stem>.npz`; CorruptCheckpointError
    naming the damaged file otherwise. The arrays load with allow_pickle=False."""
    document_path, arrays_path = directory / f"{stem}.json", directory / f"{stem}.npz"
    document = read_json(document_path)
    if document.get("format") != FORMAT:
        raise CorruptCheckpointError(
            f"cannot read {what} from {document_path}: format {document.get('format')!r}, expected {FORMAT}"
        )
    arrays = read_arrays(arrays_path)
    try:
        groups = document["groups"]
        if not isinstance(groups, list):
            raise TypeError("'groups' is not a list")
        reader = _Reader(arrays, groups)
        tree = reader.decode(document["state"])
        extra = document.get("extra", {})
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise CorruptCheckpointError(
            f"cannot read {what}: {document_path} does not match {arrays_path} ({type(exc).__name__}: {exc})"
        ) from exc
    return tree, extra, reader


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an `np.savez` file, loaded with allow_pickle=False; CorruptCheckpointError
    naming the file if it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except _NPZ_ERRORS as exc:
        raise CorruptCheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; CorruptCheckpointError naming the file if it is damaged."""
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorruptCheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(document, dict):
        raise CorruptCheckpointError(f"cannot read {path}: a JSON {type(document).__name__}, not an object")
    return document


def read_tree(directory: Path, stem: str, what: str) -> tuple[Any, dict[str, Any]]:
    """The tree and `extra` that `write_tree` wrote; CorruptCheckpointError naming a damaged file."""
    tree, extra, _ = _read(directory, stem, what)
    return tree, extra


def read_state(
    directory: Path, stem: str = "replay_buffer"
) -> tuple[Any, dict[str, Any], list[tuple[tuple[Any, ...], str]]]:
    """The state tree and `extra` that `write_state` wrote, and where the state had which space.

    Spaces come back as None (RLlib's `from_state` accepts that); put them back with
    `restore_spaces` once the buffer holds the episodes.
    """
    tree, extra, reader = _read(directory, stem, "the replay buffer")
    return tree, extra, reader.spaces


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
