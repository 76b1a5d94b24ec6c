"""An RLlib agent's checkpoint: what `RllibDriver.save` writes and `RllibDriver.load` restores.

The Algorithm's state goes through `state.py` (NumPy arrays and JSON, no pickle); next to it
go what RLlib's checkpoints leave out: `polyrl_rllib.json` (learning rates, Learner counters,
the Algorithm's counters, whether every env had just finished its episode), the trainable
parameters, the local env runner's (lagging) weights, IMPALA/APPO's pending weights snapshot,
the replay buffer (`replay.py`) and the agent's random states. Loading reads only these, into
an Algorithm rebuilt from the spec. RLlib's own checkpoint (`Algorithm.save_to_path`, pickles)
is exported to `algorithm/` for `Algorithm.from_checkpoint`; polyrl never reads it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from polyrl.errors import CorruptCheckpointError
from ray.rllib.core import DEFAULT_MODULE_ID

from polyrl_rllib import replay
from polyrl_rllib.state import (
    ALGORITHM_STATE,
    has_algorithm,
    learner_extras,
    learner_thread_state,
    pending_weights,
    restore_algorithm,
    save_algorithm,
    set_learner_extras,
    set_learner_parameters,
    set_learner_thread_state,
    set_pending_weights,
)

if TYPE_CHECKING:
    from polyrl_rllib.driver import RllibDriver

CHECKPOINT_DIR = "algorithm"
STATE_FILE = "polyrl_rllib.json"
PARAMETERS_FILE = "polyrl_parameters.npz"
ENV_RUNNER_FILE = "polyrl_env_runner.npz"
PENDING_WEIGHTS = "polyrl_pending_weights"
_PENDING = "IMPALA/APPO's pending weights snapshot"


# -- saving --------------------------------------------------------------------------------
def save(driver: RllibDriver, directory: Path) -> None:
    """Write the driver's checkpoint files into `directory` (what `RllibDriver.save` describes)."""
    save_algorithm(driver.algo, directory)
    driver.algo.save_to_path((directory / CHECKPOINT_DIR).absolute())
    learners = driver._on_learners(learner_extras)
    finished, cached = _finished_episodes(driver.algo)
    state = {
        "learning_rates": driver._learning_rates(),
        "iteration_steps": driver._iteration_steps(),
        "learner": learners[0],
        "env_runner": {
            "episodes_done": finished,
            "weights_seq_no": int(getattr(getattr(driver.algo, "env_runner", None), "_weights_seq_no", 0)),
        },
        "counters": {
            str(k): int(v) for k, v in getattr(driver.algo, "_counters", {}).items() if isinstance(v, int)
        },
        "experience": driver._experience.state(),
    }
    group = driver.algo.learner_group
    if group.is_local:
        state["learner_thread"] = learner_thread_state(group._learner)
        pending = pending_weights(group._learner)
        if pending is not None:
            replay.write_tree(pending, directory, PENDING_WEIGHTS, _PENDING)
    (directory / STATE_FILE).write_text(json.dumps(state))
    # Typed as plain mappings: mypy would otherwise match a key against savez's allow_pickle.
    arrays: dict[str, Any] = {f"to_module.{k}": v for k, v in cached.items()}
    arrays.update({f"module.{k}": v for k, v in _env_runner_weights(driver.algo).items()})
    if arrays:
        np.savez(directory / ENV_RUNNER_FILE, **arrays)
    parameters: dict[str, Any] = driver.parameters()
    np.savez(directory / PARAMETERS_FILE, **parameters)
    buffer = driver._replay_buffer()
    if buffer is not None:
        from ray.rllib.utils.serialization import gym_space_to_dict

        spaces = {name: gym_space_to_dict(space) for name, space in driver._spaces().items()}
        rng = getattr(buffer, "rng", None)
        extra = {"rng": rng.bit_generator.state} if isinstance(rng, np.random.Generator) else {}
        replay.write_state(buffer.get_state(), directory, spaces, extra)
    driver._random.save(directory)


# -- loading -------------------------------------------------------------------------------
def read_state(directory: Path) -> dict[str, Any]:
    """The contents of `polyrl_rllib.json`, once the files a checkpoint needs are known to be there."""
    state_file = directory / STATE_FILE
    if not state_file.is_file() or not has_algorithm(directory):
        if state_file.is_file() and (directory / CHECKPOINT_DIR).is_dir():
            raise CorruptCheckpointError(
                f"{directory} was written by an older polyrl: its RLlib state is only in RLlib's own "
                f"checkpoint ({CHECKPOINT_DIR}/), which is pickled, and polyrl does not unpickle "
                "(it would run code from the checkpoint). Load and re-save it with the polyrl that "
                "wrote it, or, if you trust its author, restore it with RLlib's "
                "Algorithm.from_checkpoint"
            )
        raise CorruptCheckpointError(
            f"{directory} has no {STATE_FILE} and {ALGORITHM_STATE}.json/.npz: not an rllib checkpoint"
        )
    return replay.read_json(state_file)


def restore(driver: RllibDriver, directory: Path, state: dict[str, Any]) -> None:
    """Set the saved state into a driver freshly built from the spec; close it if that fails."""
    try:
        restore_algorithm(driver.algo, directory)
        # The optimizers' state came back with the algorithm state; RLlib's lr schedulers (built
        # from the spec's rate) would overwrite it at the next update, so re-apply the saved rates.
        driver._apply_learning_rates({k: float(v) for k, v in state.get("learning_rates", {}).items()})
        _restore_polyrl_state(driver, directory, state)
    except Exception as exc:
        driver.close()
        if isinstance(exc, CorruptCheckpointError):
            raise
        raise CorruptCheckpointError(
            f"cannot restore the rllib checkpoint in {directory}: {type(exc).__name__}: {exc}"
        ) from exc


def _restore_polyrl_state(driver: RllibDriver, directory: Path, state: dict[str, Any]) -> None:
    """What RLlib's checkpoints leave out: parameters, Learner counters, buffer, RNGs, env runner."""
    parameters = directory / PARAMETERS_FILE
    if parameters.is_file():
        values = replay.read_arrays(parameters)
        for wrong in driver._on_learners(functools.partial(set_learner_parameters, values=values)):
            if wrong:
                raise CorruptCheckpointError(
                    f"{parameters} does not fit this agent's optimizers (spec changed?): {wrong[:5]}"
                )
    extras = state.get("learner", {})
    if extras:
        driver._on_learners(functools.partial(set_learner_extras, extras=extras))
    buffer = driver._replay_buffer()
    if buffer is not None and replay.has_state(directory):
        tree, extra, places = replay.read_state(directory)
        buffer.set_state(tree)
        replay.restore_spaces(buffer, places, driver._spaces())
        if "rng" in extra and isinstance(getattr(buffer, "rng", None), np.random.Generator):
            buffer.rng.bit_generator.state = extra["rng"]
    driver._random.load(directory)
    driver._experience.load_state(state.get("experience", {}))
    counters = getattr(driver.algo, "_counters", None)
    if isinstance(counters, dict):
        counters.update({k: int(v) for k, v in state.get("counters", {}).items()})
    group = driver.algo.learner_group
    if group.is_local:
        set_learner_thread_state(group._learner, state.get("learner_thread", {}))
        if replay.has_state(directory, PENDING_WEIGHTS):
            snapshot, _ = replay.read_tree(directory, PENDING_WEIGHTS, _PENDING)
            set_pending_weights(group._learner, snapshot)
    arrays: dict[str, np.ndarray] = {}
    if (directory / ENV_RUNNER_FILE).is_file():
        arrays = replay.read_arrays(directory / ENV_RUNNER_FILE)
    weights = {k.removeprefix("module."): v for k, v in arrays.items() if k.startswith("module.")}
    if weights:
        _set_env_runner_weights(driver.algo, weights)
        runner = getattr(driver.algo, "env_runner", None)
        if runner is not None and hasattr(runner, "_weights_seq_no"):
            # Which weights version it holds: it takes a broadcast only of a newer one.
            runner._weights_seq_no = int(state.get("env_runner", {}).get("weights_seq_no", 0))
    if state.get("env_runner", {}).get("episodes_done"):
        cached = {
            k.removeprefix("to_module."): torch.from_numpy(v.copy())
            for k, v in arrays.items()
            if k.startswith("to_module.")
        }
        with driver._random.active():
            _continue_after_finished_episodes(driver.algo, cached or None)


# -- the local env runner's weights ----------------------------------------------------------
def _local_env_runner_module(algo: Any) -> Any:
    """The policy module the local EnvRunner samples with (IMPALA/APPO: may lag the Learner's)."""
    runner = getattr(algo, "env_runner", None)
    module = getattr(runner, "module", None)
    if module is not None and hasattr(module, "keys"):  # a MultiRLModule
        return module.get(DEFAULT_MODULE_ID)
    return module


def _env_runner_weights(algo: Any) -> dict[str, np.ndarray]:
    module = _local_env_runner_module(algo)
    if module is None:
        return {}
    return {name: t.detach().cpu().numpy().copy() for name, t in module.state_dict().items()}


def _set_env_runner_weights(algo: Any, weights: dict[str, np.ndarray]) -> None:
    """The EnvRunner's weights as saved: RLlib's restore gives it the Learner's latest instead."""
    module = _local_env_runner_module(algo)
    if module is None:
        return
    current = module.state_dict()
    if sorted(current) != sorted(weights) or any(current[k].shape != weights[k].shape for k in current):
        raise CorruptCheckpointError(f"{ENV_RUNNER_FILE} does not fit this agent's env runner module")
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})


# -- the local env runner at an episode boundary ------------------------------------------
def _local_vector_env(algo: Any) -> tuple[Any, Any] | tuple[None, None]:
    """The local EnvRunner and its (sync) gymnasium vector env, when this process samples."""
    runner = getattr(algo, "env_runner", None)
    env = getattr(runner, "env", None)
    vector = getattr(env, "unwrapped", None)
    if not isinstance(getattr(vector, "_autoreset_envs", None), np.ndarray):
        return None, None
    return runner, vector


def _finished_episodes(algo: Any) -> tuple[bool, dict[str, np.ndarray]]:
    """Whether every env of the local EnvRunner ended its episode at the last step sampled.

    Then RLlib's next sample() first runs one exploration pass whose actions the vector env
    ignores while it resets (gymnasium's next-step autoreset). A freshly built EnvRunner
    would not: `_continue_after_finished_episodes` puts a loaded one in the same state, so
    it draws the same random numbers. Also returns the observations batch of that pass.
    """
    runner, vector = _local_vector_env(algo)
    if runner is None or vector is None or getattr(runner, "_needs_initial_reset", True):
        return False, {}
    if not bool(np.all(vector._autoreset_envs)):
        return False, {}
    cached = getattr(runner, "_cached_to_module", None)
    arrays: dict[str, np.ndarray] = {}
    if isinstance(cached, dict) and all(isinstance(v, torch.Tensor) for v in cached.values()):
        arrays = {str(k): v.detach().cpu().numpy() for k, v in cached.items()}
    return True, arrays


def _continue_after_finished_episodes(algo: Any, cached: dict[str, Any] | None) -> None:
    """Put the fresh local EnvRunner where the saver's was: every env awaiting its autoreset."""
    runner, vector = _local_vector_env(algo)
    if (
        runner is None
        or vector is None
        or not all(
            hasattr(runner, name)
            for name in ("_reset_envs_and_episodes", "_new_episode", "_ongoing_episodes")
        )
    ):
        return  # another RLlib version: the runner starts fresh, as RLlib's own restore does
    runner._reset_envs_and_episodes(explore=True)  # the seeded first reset a new runner does
    vector._autoreset_envs[:] = True  # the next step resets instead of stepping
    for index in range(runner.num_envs):
        runner._new_episode(index, runner._ongoing_episodes)  # empty: the reset starts it
    if cached:
        runner._cached_to_module = cached
