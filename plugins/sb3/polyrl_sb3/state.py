"""An SB3 model's training state (torch state, counters, episode info) as JSON and NumPy arrays.

What SB3's zip keeps outside its pickled attributes (`_get_torch_save_params`: state dicts of
the policy and each optimizer, SAC's log_ent_coef) goes to `polyrl_sb3_tensors.npz`, its layout
to the JSON; the counters its pickled attributes would carry go to the JSON too. See `archive`.
"""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import recursive_getattr

from polyrl_sb3.archive import (
    FORMAT,
    FORMAT_VERSION,
    SPEC_CHANGED,
    STATE_FILE,
    TENSORS_FILE,
    Arrays,
    corrupt,
)
from polyrl_sb3.replay import restore_replay, write_replay

#: Numbers SB3 continues from; SB3's zip pickles them among the model's attributes.
COUNTERS = (
    "num_timesteps",
    "_total_timesteps",
    "_num_timesteps_at_start",
    "_episode_num",
    "_n_updates",
    "_n_calls",  # DQN: the target network update counts these
    "_current_progress_remaining",
    "exploration_rate",  # DQN: stochastic predict() uses it before the next learn()
    "learning_rate",  # polyrl only sets constant rates (set_learning_rate)
)


# -- nested values (state dicts) as tagged JSON with tensors in the .npz -----------------------------
def _child(name: str, key: object) -> str:
    return f"{name}/{key}" if name else str(key)


def _encode(value: Any, name: str, arrays: dict[str, Any]) -> Any:
    """Tagged JSON for `value`; its tensors go into `arrays` under their path below `name`."""
    if isinstance(value, torch.Tensor):
        if name in arrays:
            raise ValueError(f"two tensors of the SB3 state map to one array name {name!r}")
        arrays[name] = value.detach().cpu().numpy().copy()
        return {"tensor": name}
    if isinstance(value, dict):
        if not all(isinstance(key, str | int) and not isinstance(key, bool) for key in value):
            raise TypeError(f"{name}: only str and int keys can be stored without pickle")
        return {"dict": [[key, _encode(item, _child(name, key), arrays)] for key, item in value.items()]}
    if isinstance(value, tuple | list):
        items = [_encode(item, _child(name, i), arrays) for i, item in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    if value is None or isinstance(value, bool | int | float | str):
        return {"value": value}
    raise TypeError(f"{name}: a {type(value).__name__} cannot be stored without pickle")


def _decode(node: Any, arrays: Arrays, name: str) -> Any:
    """The value `_encode` wrote; anything else in the JSON is a CorruptCheckpointError."""
    if not isinstance(node, dict) or len(node) != 1:
        raise corrupt(STATE_FILE, f"{name}: malformed entry {str(node)[:80]!r}")
    ((tag, content),) = node.items()
    if tag == "tensor" and isinstance(content, str):
        # A CPU tensor: load_state_dict and copy_ put it on the device the model was built on
        # (the spec's, or the one Agent.load was given), as torch.load's map_location would.
        try:
            return torch.from_numpy(np.array(arrays.get(content), copy=True))
        except TypeError as exc:  # a dtype torch has no tensor for (strings, records)
            raise corrupt(TENSORS_FILE, f"array {content!r}: {exc}") from exc
    if tag == "value" and (content is None or isinstance(content, bool | int | float | str)):
        return content
    if tag in ("tuple", "list") and isinstance(content, list):
        items = [_decode(item, arrays, f"{name}/{i}") for i, item in enumerate(content)]
        return tuple(items) if tag == "tuple" else items
    if tag == "dict" and isinstance(content, list):
        decoded = {}
        for pair in content:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str | int)):
                raise corrupt(STATE_FILE, f"{name}: malformed dict entry {str(pair)[:80]!r}")
            decoded[pair[0]] = _decode(pair[1], arrays, f"{name}/{pair[0]}")
        return decoded
    raise corrupt(STATE_FILE, f"{name}: unknown entry {tag!r}")


# -- torch state: what SB3's zip saves with th.save ------------------------------------------------
def _module(model: BaseAlgorithm, name: str) -> Any:
    attr = recursive_getattr(model, name)
    return getattr(attr, "_orig_mod", attr)  # a torch.compile'd module: its original's state (as SB3)


def _torch_layout(model: BaseAlgorithm) -> dict[str, Any]:
    state_dicts, variables = model._get_torch_save_params()
    return {
        "state_dicts": {name: _module(model, name).state_dict() for name in state_dicts},
        "variables": {name: recursive_getattr(model, name) for name in variables},
    }


def _check_module_state(name: str, saved: Any, expected: dict[str, torch.Tensor]) -> None:
    if not isinstance(saved, dict):
        raise corrupt(STATE_FILE, f"{name}: expected a state dict")
    missing, extra = sorted(expected.keys() - saved.keys()), sorted(saved.keys() - expected.keys())
    if missing or extra:
        raise corrupt(TENSORS_FILE, f"{name} lacks {missing[:5]} / has unknown {extra[:5]}: {SPEC_CHANGED}")
    for key, tensor in expected.items():
        value = saved[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape or value.dtype != tensor.dtype:
            found = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, torch.Tensor) else repr(value)
            raise corrupt(
                TENSORS_FILE,
                f"{name}/{key} is {found}, the model built from the spec has "
                f"{tuple(tensor.shape)} {tensor.dtype}: {SPEC_CHANGED}",
            )


def _check_optimizer_state(name: str, saved: Any, optimizer: torch.optim.Optimizer) -> None:
    """Groups and per-parameter tensors must fit the optimizer's parameters (torch only counts them)."""
    groups, state = (saved.get("param_groups"), saved.get("state")) if isinstance(saved, dict) else (0, 0)
    if not isinstance(groups, list) or not isinstance(state, dict):
        raise corrupt(STATE_FILE, f"{name}: expected an optimizer state dict")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sizes = [len(g.get("params", ())) if isinstance(g, dict) else -1 for g in groups]
    if sizes != [len(group["params"]) for group in optimizer.param_groups]:
        raise corrupt(STATE_FILE, f"{name} has parameter groups of sizes {sizes}: {SPEC_CHANGED}")
    for group, fresh in zip(groups, optimizer.param_groups, strict=True):
        if group.keys() != fresh.keys():
            raise corrupt(STATE_FILE, f"{name} has settings {sorted(group)}, not {sorted(fresh)}")
        for key, value in fresh.items():
            # Numbers (lr, eps, betas...) stay finite numbers: torch would only fail at the next step.
            if (_is_number(value) and not _is_number(group[key])) or (
                isinstance(value, tuple)
                and not (
                    isinstance(group[key], tuple)
                    and len(group[key]) == len(value)
                    and all(map(_is_number, group[key]))
                )
            ):
                raise corrupt(STATE_FILE, f"{name} setting {key} = {group[key]!r} is not like {value!r}")
    for index, entries in state.items():
        if not (isinstance(index, int) and 0 <= index < len(params) and isinstance(entries, dict)):
            raise corrupt(STATE_FILE, f"{name}: state of unknown parameter {index!r}: {SPEC_CHANGED}")
        for key, value in entries.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[index].shape:
                raise corrupt(
                    TENSORS_FILE,
                    f"{name}/state/{index}/{key} has shape {tuple(value.shape)}, its parameter "
                    f"{tuple(params[index].shape)}: {SPEC_CHANGED}",
                )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _restore_torch(model: BaseAlgorithm, layout: Any, arrays: Arrays) -> None:
    saved = _decode(layout, arrays, "torch")
    expected_dicts, expected_vars = model._get_torch_save_params()
    if not isinstance(saved, dict) or not {"state_dicts", "variables"} <= saved.keys():
        raise corrupt(STATE_FILE, "torch: expected state_dicts and variables")
    dicts, variables = saved["state_dicts"], saved["variables"]
    if sorted(dicts) != sorted(expected_dicts) or sorted(variables) != sorted(expected_vars):
        raise corrupt(
            STATE_FILE,
            f"holds torch state {sorted(dicts)} + {sorted(variables)}, the model built from the "
            f"spec has {sorted(expected_dicts)} + {sorted(expected_vars)}: {SPEC_CHANGED}",
        )
    for name in expected_dicts:
        target = _module(model, name)
        if isinstance(target, torch.optim.Optimizer):
            _check_optimizer_state(name, dicts[name], target)
        else:
            _check_module_state(name, dicts[name], target.state_dict())
        try:
            target.load_state_dict(dicts[name])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise corrupt(TENSORS_FILE, f"{name} does not load: {exc}") from exc
    for name in expected_vars:
        current, value = recursive_getattr(model, name), variables[name]
        if current is None:
            continue
        if (
            not isinstance(value, torch.Tensor)
            or value.shape != current.shape
            or value.dtype != current.dtype
        ):
            raise corrupt(
                TENSORS_FILE, f"{name} does not fit the model's {tuple(current.shape)}: {SPEC_CHANGED}"
            )
        with torch.no_grad():
            current.copy_(value)  # in place: the optimizer holds this very Parameter


# -- counters and episode info ---------------------------------------------------------------
def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _counters(model: BaseAlgorithm) -> dict[str, int | float]:
    found = {}
    for name in COUNTERS:
        value = _plain(getattr(model, name, None))
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = value
    return found


def _restore_counters(model: BaseAlgorithm, saved: Any) -> None:
    expected = _counters(model)
    if not isinstance(saved, dict) or sorted(saved) != sorted(expected):
        keys = sorted(saved) if isinstance(saved, dict) else saved
        raise corrupt(
            STATE_FILE, f"counters {keys} differ from the model's {sorted(expected)}: {SPEC_CHANGED}"
        )
    for name, value in saved.items():
        is_int = isinstance(expected[name], int)
        valid = isinstance(value, int) if is_int else isinstance(value, int | float) and math.isfinite(value)
        if isinstance(value, bool) or not valid or (is_int and value < 0):
            raise corrupt(
                STATE_FILE, f"counter {name} = {value!r} is not a valid {type(expected[name]).__name__}"
            )
        setattr(model, name, value)
    model._setup_lr_schedule()  # the schedule is built from learning_rate, as set_learning_rate does


def _episode_infos(buffer: deque | None) -> list[Any] | None:
    """A deque of Monitor episode dicts (or success flags) as JSON; only SB3's logging reads it, so
    entries that are not plain numbers are left out rather than refusing to save."""
    if buffer is None:
        return None
    kept = []
    for entry in buffer:
        plain = {str(k): _plain(v) for k, v in entry.items()} if isinstance(entry, dict) else _plain(entry)
        if _episode_info_ok(plain):
            kept.append(plain)
    return kept


def _episode_info_ok(entry: Any) -> bool:
    values = entry.values() if isinstance(entry, dict) else [entry]
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _restore_episode_infos(model: BaseAlgorithm, name: str, saved: Any) -> None:
    if saved is None:
        setattr(model, name, None)
        return
    if not isinstance(saved, list) or not all(map(_episode_info_ok, saved)):
        raise corrupt(STATE_FILE, f"{name} is not a list of numbers or of dicts of numbers")
    setattr(model, name, deque(saved, maxlen=model._stats_window_size))


# -- the whole model -------------------------------------------------------------------------
def write_model_state(model: BaseAlgorithm, directory: Path, extra: dict[str, Any]) -> None:
    """Write the model's training state (the three files above); `extra` joins the JSON."""
    arrays: dict[str, Any] = {}  # not dict[str, ndarray]: mypy would match a key against savez's allow_pickle
    state: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, **extra}
    state["counters"] = _counters(model)
    state["ep_info_buffer"] = _episode_infos(model.ep_info_buffer)
    state["ep_success_buffer"] = _episode_infos(model.ep_success_buffer)
    state["torch"] = _encode(_torch_layout(model), "", arrays)
    np.savez(directory / TENSORS_FILE, **arrays)
    buffer = getattr(model, "replay_buffer", None)
    state["replay"] = None if buffer is None else write_replay(buffer, directory)
    (directory / STATE_FILE).write_text(json.dumps(state))


def restore_model_state(model: BaseAlgorithm, directory: Path, state: dict[str, Any]) -> None:
    """Put the state `write_model_state` wrote into `model`, freshly built from the same spec."""
    with Arrays(directory, TENSORS_FILE) as arrays:
        _restore_torch(model, state.get("torch"), arrays)
    _restore_counters(model, state.get("counters"))
    for name in ("ep_info_buffer", "ep_success_buffer"):
        _restore_episode_infos(model, name, state.get(name))
    buffer = getattr(model, "replay_buffer", None)
    if (buffer is None) != (state.get("replay") is None):
        saved = state.get("replay") is not None
        raise corrupt(
            STATE_FILE, f"replay buffer saved: {saved}, in the model: {buffer is not None}: {SPEC_CHANGED}"
        )
    if buffer is not None:
        restore_replay(buffer, state["replay"], directory)
    if model.use_sde:
        policy: Any = model.policy  # reset_noise exists on the SDE policies only
        policy.reset_noise()  # as SB3's load: a fresh gSDE exploration matrix
