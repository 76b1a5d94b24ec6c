"""Checkpoints of the earlier pickle-based sb3 format: refused by default, converted on request.

Earlier polyrl saved SB3's own zip (`native/model.zip`, whose attributes are cloudpickle payloads)
and `native/replay_buffer.pkl`; loading them runs whatever code the files name. `Agent.load`
refuses them with `PickledCheckpointError`. Whoever trusts such a checkpoint converts it once:

    python -m polyrl_sb3.legacy OLD_PATH NEW_PATH [--trust-env-factory]

which unpickles OLD_PATH (the only place polyrl does) and saves it in the current format.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl import Agent
from polyrl.errors import CorruptCheckpointError

if TYPE_CHECKING:
    from polyrl import AgentSpec
    from polyrl.backend import EnvSource
    from polyrl.manifest import CheckpointManifest

    from polyrl_sb3.driver import Sb3Driver

LEGACY_MODEL_FILE = "model.zip"
LEGACY_REPLAY_FILE = "replay_buffer.pkl"

# Set only inside convert_pickled_checkpoint: lets Sb3Driver.load read the old files.
_PICKLE_ALLOWED: ContextVar[bool] = ContextVar("polyrl_sb3_pickle_allowed", default=False)


class PickledCheckpointError(CorruptCheckpointError):
    """An sb3 checkpoint of the earlier format, whose files are pickles that run code when loaded."""


def is_pickled_checkpoint(directory: Path) -> bool:
    """Whether `directory` (a checkpoint's native/) holds the earlier format's SB3 zip."""
    return (directory / LEGACY_MODEL_FILE).is_file()


def pickle_allowed() -> bool:
    """True only while `convert_pickled_checkpoint` loads a checkpoint its caller trusts."""
    return _PICKLE_ALLOWED.get()


def refusal(directory: Path) -> PickledCheckpointError:
    """The error for loading an earlier-format checkpoint, with how to convert it."""
    checkpoint = directory.parent
    return PickledCheckpointError(
        f"checkpoint {checkpoint} is in the earlier sb3 format: native/{LEGACY_MODEL_FILE} (SB3's zip "
        f"of cloudpickled attributes) and native/{LEGACY_REPLAY_FILE} are pickles, which run code "
        "when loaded, so this polyrl does not load them. If you trust whoever wrote it, convert it "
        f"once (this unpickles it): python -m polyrl_sb3.legacy {checkpoint} NEW_PATH "
        "[--trust-env-factory]; or load it with the polyrl version that wrote it"
    )


def load_pickled(driver_cls: type[Sb3Driver], directory: Path, spec: AgentSpec, env: EnvSource) -> Sb3Driver:
    """The earlier format's load: SB3's own loaders, which unpickle. Only with `pickle_allowed()`."""
    import json

    from polyrl.driverkit import GlobalRandomState, resolve_device

    from polyrl_sb3.params import algorithm_class, apply_torch_threads

    if not pickle_allowed():
        raise refusal(directory)
    apply_torch_threads(spec)
    device = resolve_device(spec.device)  # before any env is built: a missing GPU is refused first
    with GlobalRandomState.preserved():
        vec_env = driver_cls._vec_env(spec, env)
        model = algorithm_class(spec.algorithm).load(
            directory / LEGACY_MODEL_FILE, env=vec_env, device=device
        )
        random_state = GlobalRandomState()
    replay = directory / LEGACY_REPLAY_FILE
    if replay.is_file() and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(replay)
    driver = driver_cls(spec, env, model, random_state)
    driver._random.load(directory)
    state_file = directory / "polyrl_sb3.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        driver._chunk = int(state["iteration_steps"])
        if "action_space_rng" in state:
            model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    return driver


@contextmanager
def _pickle_allowed() -> Iterator[None]:
    token = _PICKLE_ALLOWED.set(True)
    try:
        yield
    finally:
        _PICKLE_ALLOWED.reset(token)


def convert_pickled_checkpoint(
    source: str | Path,
    target: str | Path,
    *,
    env: Any = None,
    trust_env_factory: bool = False,
) -> CheckpointManifest:
    """Load an earlier-format sb3 checkpoint (UNPICKLING it) and save it in the current format.

    Only for checkpoints from a source you would run code from. The manifest and file hashes
    are checked and `env` / `trust_env_factory` mean what they mean for `Agent.load`; `target`
    may be `source` (the directory is replaced atomically).
    """
    with _pickle_allowed():
        agent = Agent.load(source, env=env, backend="sb3", trust_env_factory=trust_env_factory)
    try:
        return agent.save(target)
    finally:
        agent.close()


def main(argv: list[str] | None = None) -> None:
    """`python -m polyrl_sb3.legacy OLD NEW`: convert a trusted earlier-format checkpoint."""
    parser = argparse.ArgumentParser(
        prog="python -m polyrl_sb3.legacy",
        description="Convert an sb3 checkpoint of the earlier pickle-based format (this unpickles it: "
        "only for checkpoints you trust) into the current format, which loads without running code.",
    )
    parser.add_argument("source", type=Path, help="the earlier-format checkpoint directory")
    parser.add_argument("target", type=Path, help="where to save the converted checkpoint (may be source)")
    parser.add_argument(
        "--trust-env-factory", action="store_true", help="import the env factory the checkpoint names"
    )
    args = parser.parse_args(argv)
    convert_pickled_checkpoint(args.source, args.target, trust_env_factory=args.trust_env_factory)
    print(f"converted {args.source} -> {args.target}")


if __name__ == "__main__":
    main()
