"""A Tianshou agent's checkpoint: what `TianshouDriver.save` writes and `TianshouDriver.load` reads.

`algorithm.pt` holds the algorithm's state_dict (networks, target networks, every optimizer)
and SAC's entropy-coefficient optimizer, `polyrl_tianshou.json` the driver's counters and
Tianshou's plain-attribute ones, and, off-policy, `replay_buffer.npz` the replay buffer
(replay.py); the random states go beside them (driverkit). Loading uses
`torch.load(weights_only=True)` and `np.load(allow_pickle=False)`: nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from polyrl.errors import CorruptCheckpointError

from polyrl_tianshou.replay import load_buffer, save_buffer

if TYPE_CHECKING:
    from polyrl_tianshou.driver import TianshouDriver

ALGORITHM_FILE = "algorithm.pt"
REPLAY_FILE = "replay_buffer.npz"
STATE_FILE = "polyrl_tianshou.json"


def check_files(directory: Path) -> None:
    """CorruptCheckpointError unless `directory` holds the files every Tianshou checkpoint has."""
    weights = directory / ALGORITHM_FILE
    state_file = directory / STATE_FILE
    if not weights.is_file() or not state_file.is_file():
        raise CorruptCheckpointError(
            f"{directory} lacks {ALGORITHM_FILE} or {STATE_FILE}: not a tianshou checkpoint"
        )


def restore(driver: TianshouDriver, directory: Path) -> None:
    """Restore weights, optimizers, counters and replay buffer into a driver freshly built from the
    spec; the driver is closed if that fails."""
    weights = directory / ALGORITHM_FILE
    state_file = directory / STATE_FILE
    try:
        saved = torch.load(weights, map_location=driver.settings.device, weights_only=True)
        driver.algorithm.load_state_dict(saved["algorithm"])
        alpha_optimizer = driver._alpha_optimizer()
        if alpha_optimizer is not None and saved.get("alpha_optimizer") is not None:
            alpha_optimizer.load_state_dict(saved["alpha_optimizer"])
        restore_counters(driver, json.loads(state_file.read_text()))
        driver.random.load(directory)
        replay = directory / REPLAY_FILE
        if replay.is_file() and not driver.settings.on_policy:
            load_buffer(driver.buffer, replay)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        driver.close()
        raise CorruptCheckpointError(
            f"{directory} does not fit the spec's {driver.spec.algorithm} networks: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    except BaseException:
        driver.close()
        raise


def counters(driver: TianshouDriver) -> dict[str, Any]:
    """The driver's counters and Tianshou's plain-attribute ones, as `polyrl_tianshou.json` holds them."""
    algorithm: Any = driver.algorithm
    state: dict[str, Any] = {
        "env_steps": driver._env_steps,
        "gradient_steps": driver._gradient_steps,
        "horizon": driver._horizon,
        "iteration_steps": driver.settings.iteration_steps,
        "algorithm_class": type(algorithm).__name__,
        "next_episode_id": driver.experience.collected.next_episode_id,
    }
    # Plain-attribute counters of Tianshou algorithms, which state_dict() leaves out.
    for name in ("_iter", "_cnt", "_last"):
        if hasattr(algorithm, name):
            state[name] = getattr(algorithm, name)
    rms = getattr(algorithm, "ret_rms", None)
    if rms is not None:
        state["ret_rms"] = {
            "mean": np.asarray(rms.mean).tolist(),
            "var": np.asarray(rms.var).tolist(),
            "count": float(rms.count),
        }
    return state


def restore_counters(driver: TianshouDriver, state: dict[str, Any]) -> None:
    """Put back what `counters` read."""
    algorithm: Any = driver.algorithm
    driver._env_steps = int(state["env_steps"])
    driver._gradient_steps = int(state.get("gradient_steps", 0))
    driver._horizon = state.get("horizon")
    driver.experience.collected.next_episode_id = int(state.get("next_episode_id", 0))
    for name in ("_iter", "_cnt", "_last"):
        if name in state and hasattr(algorithm, name):
            setattr(algorithm, name, state[name])
    rms = getattr(algorithm, "ret_rms", None)
    if rms is not None and "ret_rms" in state:
        rms.mean = np.asarray(state["ret_rms"]["mean"])
        rms.var = np.asarray(state["ret_rms"]["var"])
        rms.count = state["ret_rms"]["count"]


def save(driver: TianshouDriver, directory: Path) -> None:
    """The algorithm's state_dict (networks, target networks, optimizers), counters, buffer."""
    alpha_optimizer = driver._alpha_optimizer()
    torch.save(
        {
            "algorithm": driver.algorithm.state_dict(),
            "alpha_optimizer": alpha_optimizer.state_dict() if alpha_optimizer is not None else None,
        },
        directory / ALGORITHM_FILE,
    )
    (directory / STATE_FILE).write_text(json.dumps(counters(driver), indent=1))
    driver.random.save(directory)
    if not driver.settings.on_policy and len(driver.buffer) > 0:
        save_buffer(driver.buffer, directory / REPLAY_FILE)
