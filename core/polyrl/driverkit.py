"""What every backend driver repeats, written once: option checks and their messages, the
iteration-size rule, torch threads, optimizer access, trainable parameters and a per-agent
random state.

Backend plugins import from here so that one rule gives one message and one behaviour on every
backend. Nothing here imports torch: it works on the optimizer objects a driver passes in.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from polyrl._model import close_matches
from polyrl.errors import UnsupportedOptionError


def unknown_options_error(
    backend: str,
    algorithm: str,
    unknown: Iterable[str],
    valid: Iterable[str],
    valid_text: str | None = None,
) -> UnsupportedOptionError:
    """The error for `backend_options` keys the backend does not know, each with its closest valid key.

    `valid` is every accepted key (for suggestions); `valid_text` describes them when a plain
    sorted list would not (RLlib groups its keys by the config method that takes them).
    """
    names = sorted(set(unknown))
    known = sorted(set(valid))
    hints = {name: close_matches(name, known) for name in names}
    hint_text = "; ".join(f"{name!r}: did you mean {close}?" for name, close in hints.items() if close)
    return UnsupportedOptionError(
        f"{backend} {algorithm} does not accept backend_options {names}"
        f"{' (' + hint_text + ')' if hint_text else ''}. Valid keys: {valid_text or ', '.join(known)}"
    )


VEC_ENV_KINDS = ("dummy", "subproc")


def vec_env_option(spec: Any) -> str:
    """backend_options.vec_env: "dummy" (envs stepped in this process, default) or "subproc"."""
    kind = spec.backend_options.get("vec_env", "dummy")
    if kind not in VEC_ENV_KINDS:
        raise UnsupportedOptionError(
            f"backend_options.vec_env must be 'dummy' or 'subproc' (one process per env), got {kind!r}"
        )
    if kind == "subproc" and getattr(spec, "normalize", None) is not None:
        raise UnsupportedOptionError(
            "normalize keeps its statistics in the agent's process, but backend_options.vec_env "
            "'subproc' steps the envs in other processes; drop vec_env (or set it to 'dummy')"
        )
    return str(kind)


def resolve_device(requested: str) -> str:
    """The torch device for a spec's `device`: "auto" is "cuda" when torch sees a GPU, else "cpu".

    "cuda" or "cuda:N" on a machine where torch sees no such GPU is a DeviceUnavailableError
    naming the device and the GPUs torch does see; nothing falls back to the CPU silently.
    """
    import torch

    if requested == "cpu":
        return "cpu"
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if requested == "auto":
        return "cuda" if available else "cpu"
    index = int(requested.partition(":")[2] or 0)
    if not available or index >= count:
        from polyrl.errors import DeviceUnavailableError

        seen = (
            f"torch sees {count} GPU(s)" if available else "torch sees no GPU (CPU-only build or no driver)"
        )
        raise DeviceUnavailableError(
            f"device {requested!r} is not available: {seen}. Use device='cpu' or 'auto', or load "
            "with Agent.load(path, device='cpu')"
        )
    return requested


def torch_threads_option(spec: Any) -> int:
    """backend_options.torch_threads: torch's intra-op threads (default 1; 0 leaves torch's setting).

    One thread is the default because two threads per process on a loaded 2-core machine crawl.
    """
    threads = spec.backend_options.get("torch_threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise UnsupportedOptionError(
            f"backend_options.torch_threads must be an int >= 0 (0 leaves torch's setting), got {threads!r}"
        )
    return threads


def apply_torch_threads(threads: int) -> None:
    """Set torch's intra-op thread count (0: leave it as it is). Imports torch."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def per_env_iteration_steps(iteration_steps: int, n_envs: int, algorithm: str) -> int:
    """The env steps each env takes per on-policy iteration: one rule and one message everywhere.

    Each env must take at least one step, and PPO needs at least two in all (its advantage
    normalisation divides by the batch's standard deviation).
    """
    per_env = iteration_steps // n_envs
    if per_env < 1 or (algorithm == "ppo" and per_env * n_envs < 2):
        raise UnsupportedOptionError(
            f"iteration_steps={iteration_steps} is too small for n_envs={n_envs}: each env must take "
            "at least one step per iteration (PPO needs 2 in all)"
        )
    return per_env


def native_settings(source: object, names: Iterable[str]) -> dict[str, bool | int | float | str]:
    """The plain settings `names` of a library object, for EffectiveHyperparameters.native.

    Read with getattr; missing ones and non-scalars are left out; a non-finite float becomes its
    string ("inf"), so the report stays valid JSON.
    """
    found: dict[str, bool | int | float | str] = {}
    for name in names:
        value = getattr(source, name, None)
        if isinstance(value, float) and not math.isfinite(value):
            found[name] = str(value)
        elif isinstance(value, bool | int | float | str):
            found[name] = value
    return found


# -- trainable parameters --------------------------------------------------------------------


def optimizer_parameters(optimizers: Iterable[Any]) -> dict[str, np.ndarray]:
    """Every tensor the given torch optimizers update, as NumPy copies named "o{i}.g{j}.p{k}".

    Taking them from the optimizers (not from the modules) gives exactly the trainable state:
    target networks and buffers are left out, an entropy coefficient's optimizer is counted.
    """
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in _optimized_tensors(optimizers)}


def _optimized_tensors(optimizers: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """Each tensor the optimizers update once, named "o{i}.g{j}.p{k}" by optimizer, group, position."""
    seen: set[int] = set()
    for i, optimizer in enumerate(optimizers):
        for j, group in enumerate(optimizer.param_groups):
            for k, tensor in enumerate(group["params"]):
                if id(tensor) not in seen:
                    seen.add(id(tensor))
                    yield f"o{i}.g{j}.p{k}", tensor


def load_optimizer_parameters(optimizers: Iterable[Any], values: Mapping[str, np.ndarray]) -> None:
    """Copy `values` (named as `optimizer_parameters` names them) into the optimizers' tensors.

    In place, without touching the optimizers' state: what a follower does when it copies a
    leader's weights (polyrl.cooperate). KeyError/ValueError when a name or shape is missing.
    """
    import torch

    with torch.no_grad():
        for name, tensor in _optimized_tensors(optimizers):
            value = np.asarray(values[name])
            if value.shape != tuple(tensor.shape):
                raise ValueError(f"{name}: shape {value.shape}, the tensor's {tuple(tensor.shape)}")
            tensor.copy_(torch.as_tensor(value, dtype=tensor.dtype, device=tensor.device))


def set_optimizer_learning_rate(optimizers: Iterable[Any], value: float) -> None:
    """Write `value` into every parameter group of every optimizer: what the next step uses."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = value


def optimizer_learning_rate(optimizers: Iterable[Any]) -> float:
    """The learning rate the first optimizer's first parameter group holds (what it steps with)."""
    for optimizer in optimizers:
        return float(optimizer.param_groups[0]["lr"])
    raise UnsupportedOptionError("the agent has no optimizer to read a learning rate from")


# -- one random state per agent -----------------------------------------------------------------

RANDOM_STATE_FILE = "polyrl_random_state.npz"


class GlobalRandomState:
    """The process-global random generators a library draws from, kept per agent.

    SB3, Tianshou and RLlib sample actions, minibatches and exploration noise from the global
    generators of Python's `random`, NumPy and torch. Two agents in one process would share
    (and perturb) one stream; a driver instead runs each library call inside `active()`, which
    swaps this agent's states in and the caller's back out. The states go into the checkpoint
    as plain arrays (`save`/`load`), so a loaded agent continues the same random stream.
    """

    def __init__(self, seed: int | None = None) -> None:
        """Start from the current global states, or from fresh ones seeded with `seed`.

        Seeding never changes the caller's generators: the seeded states are captured and
        the caller's are put back.
        """
        if seed is None:
            self._state = _capture()
            return
        outer = _capture()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(seed)
        self._state = _capture()
        _restore(outer)

    @staticmethod
    @contextmanager
    def preserved() -> Iterator[None]:
        """Give the caller's global states back after the block (a library that seeds them on build)."""
        outer = _capture()
        try:
            yield
        finally:
            _restore(outer)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the block with this agent's random states; keep what the block drew."""
        outer = _capture()
        _restore(self._state)
        try:
            yield
        finally:
            self._state = _capture()
            _restore(outer)

    def save(self, directory: Path) -> None:
        """Write the states as NumPy arrays (no pickle) into `directory`."""
        # Typed as a plain mapping: mypy would otherwise match a key against savez's allow_pickle.
        arrays: dict[str, Any] = self._state
        np.savez(directory / RANDOM_STATE_FILE, **arrays)

    def load(self, directory: Path) -> bool:
        """Take the states saved in `directory`; False (and nothing changed) when none were saved."""
        path = directory / RANDOM_STATE_FILE
        if not path.is_file():
            return False
        with np.load(path, allow_pickle=False) as saved:
            self._state = {key: saved[key] for key in saved.files}
        return True


def _mt19937_arrays(state: Any, prefix: str) -> dict[str, np.ndarray]:
    _, keys, position, has_gauss, cached = state
    return {
        f"{prefix}_keys": np.asarray(keys, dtype=np.uint32),
        f"{prefix}_meta": np.asarray([position, has_gauss], dtype=np.int64),
        f"{prefix}_gauss": np.asarray([cached], dtype=np.float64),
    }


def _mt19937_state(arrays: Any, prefix: str) -> tuple[str, np.ndarray, int, int, float]:
    position, has_gauss = (int(v) for v in arrays[f"{prefix}_meta"])
    return (
        "MT19937",
        np.asarray(arrays[f"{prefix}_keys"]),
        position,
        has_gauss,
        float(arrays[f"{prefix}_gauss"][0]),
    )


def legacy_random_state(generator: np.random.RandomState, prefix: str) -> dict[str, np.ndarray]:
    """A NumPy RandomState (as libraries keep for samplers) as arrays named `prefix`_*, no pickle."""
    return _mt19937_arrays(generator.get_state(), prefix)


def restore_legacy_random_state(generator: np.random.RandomState, arrays: Any, prefix: str) -> None:
    """Put back a state `legacy_random_state` wrote (arrays: a dict or an open .npz)."""
    generator.set_state(_mt19937_state(arrays, prefix))


def _capture() -> dict[str, np.ndarray]:
    version, python_state, gauss = random.getstate()
    state = {
        "python": np.asarray(python_state, dtype=np.uint64),
        "python_meta": np.asarray([version, 0 if gauss is None else 1], dtype=np.int64),
        "python_gauss": np.asarray([0.0 if gauss is None else gauss], dtype=np.float64),
        # The global NumPy generator is a RandomState too: the same arrays as the samplers'.
        **_mt19937_arrays(np.random.get_state(), "numpy"),
    }
    torch = sys.modules.get("torch")  # only a library that already imported torch draws from it
    if torch is not None:
        state["torch"] = torch.get_rng_state().numpy().copy()
    return state


def _restore(state: dict[str, np.ndarray]) -> None:
    version, has_gauss = (int(v) for v in state["python_meta"])
    gauss = float(state["python_gauss"][0]) if has_gauss else None
    random.setstate((version, tuple(int(v) for v in state["python"]), gauss))
    np.random.set_state(_mt19937_state(state, "numpy"))
    torch = sys.modules.get("torch")
    if torch is not None and "torch" in state:
        torch.set_rng_state(torch.from_numpy(state["torch"].copy()))
