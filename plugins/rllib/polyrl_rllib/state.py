"""An RLlib Algorithm's state in a polyrl checkpoint, without pickle, and what RLlib leaves out.

RLlib's checkpoints (`Algorithm.save_to_path`) are pickles: `class_and_ctor_args.pkl` and every
component's `state.pkl` (RLModule weights, optimizer and connector states) run code when read.
polyrl still exports one, for `Algorithm.from_checkpoint` outside polyrl, but never reads it:
`save_algorithm` writes the same state, `Algorithm.get_state()` (RLModule weights, optimizer
states, connector states such as running mean/std filters, the env runner's and Learners'
counters, metrics, the iteration), as NumPy arrays plus JSON (`replay.write_tree`), and
`restore_algorithm` sets it into an Algorithm built from the spec, in the order
`Algorithm.restore_from_path` would.

The rest of this module reads and sets Learner state that RLlib's checkpoints leave out:
everything its optimizers update (SAC's entropy temperature lives outside the RLModule),
target-update counters, adaptive KL coefficients, IMPALA/APPO learner-thread counters and the
weights snapshot waiting to be broadcast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from polyrl.driverkit import load_optimizer_parameters, optimizer_parameters
from polyrl.errors import CorruptCheckpointError
from ray.rllib.core import COMPONENT_LEARNER_GROUP, COMPONENT_METRICS_LOGGER, DEFAULT_MODULE_ID
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.tune.result import TRAINING_ITERATION

from polyrl_rllib import replay

#: `<stem>.npz` + `<stem>.json`: the Algorithm's state tree.
ALGORITHM_STATE = "polyrl_algorithm"
_WHAT = "the RLlib algorithm state"


# -- the Algorithm's own state -------------------------------------------------------------
def save_algorithm(algo: Any, directory: Path) -> None:
    """Write `algo.get_state()` into `directory` as `polyrl_algorithm.npz` + `.json`.

    Raises CheckpointError naming the place in the tree of a leaf that is neither JSON nor an
    array (a custom connector's state, say), rather than dropping it.
    """
    import ray

    replay.write_tree(algo.get_state(), directory, ALGORITHM_STATE, _WHAT, extra={"ray": ray.__version__})


def has_algorithm(directory: Path) -> bool:
    """Whether `directory` holds both files `save_algorithm` writes."""
    return all((directory / f"{ALGORITHM_STATE}.{suffix}").is_file() for suffix in ("json", "npz"))


def restore_algorithm(algo: Any, directory: Path) -> None:
    """Set the state `save_algorithm` wrote into `algo` (built from the same spec); reads no pickle.

    CorruptCheckpointError names the file if it is damaged, lacks a component the Algorithm
    has, or does not fit the Algorithm (RLlib's set_state fails on it).
    """
    tree, _ = replay.read_tree(directory, ALGORITHM_STATE, _WHAT)
    where = directory / f"{ALGORITHM_STATE}.json"
    if not isinstance(tree, dict):
        raise CorruptCheckpointError(f"{where}: the algorithm state is a {type(tree).__name__}, not a dict")
    wanted = {name for name, _ in algo.get_checkpointable_components()}
    missing = sorted((wanted | {COMPONENT_METRICS_LOGGER, TRAINING_ITERATION}) - tree.keys())
    if missing:
        raise CorruptCheckpointError(f"{where} lacks the state of {', '.join(missing)}")
    try:
        _restore(algo, tree)
        _synchronize(algo, tree)
    except Exception as exc:
        raise CorruptCheckpointError(
            f"{where} does not fit this agent's algorithm: {type(exc).__name__}: {exc}"
        ) from exc


def _restore(component: Any, state: dict[str, Any]) -> None:
    """What `component.restore_from_path(path)` does, with `state` in place of the files there.

    As RLlib does: each Checkpointable subcomponent first, recursively, in the component's
    order, then the component's own remaining state through its `set_state`. (`set_state` of
    the whole tree differs: the Algorithm's syncs the env runners' step counter from its metrics
    before restoring those.) A subcomponent living in remote actors (remote Learners) gets its
    state through the component's `set_state`, which ships it to them.
    """
    from ray.rllib.utils.actor_manager import FaultTolerantActorManager

    components = component.get_checkpointable_components()
    for name, sub in components:
        if name not in state:
            continue  # RLlib writes no directory for it, and restores nothing
        if isinstance(sub, FaultTolerantActorManager):
            component.set_state({name: state[name]})
        else:
            _restore(sub, state[name])
    names = {name for name, _ in components}
    component.set_state({key: value for key, value in state.items() if key not in names})


def _synchronize(algo: Any, tree: dict[str, Any]) -> None:
    """What `Algorithm.restore_from_path` does after restoring: the env runners get the restored
    weights (inference-only) and, when some are remote, the connector states and step count."""
    group = getattr(algo, "env_runner_group", None)
    if group is None:
        return
    if COMPONENT_LEARNER_GROUP in tree:
        group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)
    if group.num_remote_env_runners() > 0:
        steps = algo.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
        if algo.env_runner:
            group.sync_env_runner_states(
                config=algo.config, env_steps_sampled=steps, from_worker=algo.env_runner
            )
        else:
            group.sync_env_runner_states(
                config=algo.config,
                from_worker=None,
                env_steps_sampled=steps,
                env_to_module=algo.env_to_module_connector,
                module_to_env=algo.module_to_env_connector,
            )


# -- the Learner's trainable parameters ----------------------------------------------------
def learner_optimizers(learner: Any) -> list[Any]:
    """The Learner's torch optimizers of the policy module, in RLlib's (stable) order."""
    return [optimizer for _, optimizer in learner.get_optimizers_for_module(DEFAULT_MODULE_ID)]


def learner_parameters(learner: Any) -> dict[str, np.ndarray]:
    """What the Learner's optimizers update (SAC: also the entropy temperature log_alpha)."""
    return optimizer_parameters(learner_optimizers(learner))


def set_learner_parameters(learner: Any, values: dict[str, np.ndarray]) -> list[str]:
    """Copy saved values into the tensors the optimizers update; the names that did not fit."""
    current = learner_parameters(learner)
    wrong = sorted(set(current) ^ set(values))
    wrong += [name for name in current if name in values and values[name].shape != current[name].shape]
    if wrong:
        return wrong
    load_optimizer_parameters(learner_optimizers(learner), values)
    return []


# -- Learner counters ----------------------------------------------------------------------
#: Learner attributes that are plain counters RLlib's checkpoints leave out although schedules
#: depend on them: the env-step count of the last target-network update (DQN/SAC, APPO).
_LEARNER_COUNTERS = ("last_update_ts_by_mid", "_last_update_ts_by_mid")


def learner_extras(learner: Any) -> dict[str, Any]:
    """Learner state outside RLlib's checkpoint: target-update counters, adaptive KL coefficients."""
    extras: dict[str, Any] = {}
    for name in _LEARNER_COUNTERS:
        counters = getattr(learner, name, None)
        if isinstance(counters, dict):
            extras[name] = {str(module): int(value) for module, value in counters.items()}
    kl = getattr(learner, "curr_kl_coeffs_per_module", None)
    if isinstance(kl, dict):
        extras["kl_coeffs"] = {str(module): float(value.item()) for module, value in kl.items()}
    queue = getattr(learner, "_learner_thread_in_queue", None)
    rng = getattr(queue, "_rng", None)
    if isinstance(rng, np.random.Generator):
        extras["circular_buffer_rng"] = rng.bit_generator.state
    return extras


def set_learner_extras(learner: Any, extras: dict[str, Any]) -> None:
    """Put back what `learner_extras` read."""
    for name in _LEARNER_COUNTERS:
        counters = getattr(learner, name, None)
        if isinstance(counters, dict) and name in extras:
            counters.update({module: int(value) for module, value in extras[name].items()})
    kl = getattr(learner, "curr_kl_coeffs_per_module", None)
    if kl is not None and "kl_coeffs" in extras:
        for module, value in extras["kl_coeffs"].items():
            kl[module].data.fill_(float(value))  # a LambdaDefaultDict builds missing entries
    queue = getattr(learner, "_learner_thread_in_queue", None)
    rng = getattr(queue, "_rng", None)
    if isinstance(rng, np.random.Generator) and "circular_buffer_rng" in extras:
        rng.bit_generator.state = extras["circular_buffer_rng"]


# -- IMPALA/APPO: the Learner's background thread ------------------------------------------
def learner_thread_state(learner: Any) -> dict[str, Any]:
    """IMPALA/APPO learner-thread counters (updates towards the next weights snapshot) and APPO's
    circular batch buffer position; {} for other Learners."""
    if getattr(learner, "_learner_thread", None) is None:
        return {}
    state: dict[str, Any] = {
        name: int(getattr(learner, name))
        for name in ("_submitted_updates", "_num_updates")
        if hasattr(learner, name)
    }
    queue = getattr(learner, "_learner_thread_in_queue", None)
    if not hasattr(queue, "unfinished_tasks") and queue is not None:
        state["circular_buffer"] = {
            name: int(getattr(queue, name))
            for name in ("_offset", "_num_added", "_total_puts", "_total_gets", "_total_dropped")
            if hasattr(queue, name)
        }
    return state


def set_learner_thread_state(learner: Any, state: dict[str, Any]) -> None:
    """Put back what `learner_thread_state` read."""
    for name in ("_submitted_updates", "_num_updates"):
        if name in state and hasattr(learner, name):
            setattr(learner, name, int(state[name]))
    queue = getattr(learner, "_learner_thread_in_queue", None)
    for name, value in state.get("circular_buffer", {}).items():
        if hasattr(queue, name):
            setattr(queue, name, int(value))


def pending_weights(learner: Any) -> Any:
    """The weights snapshot IMPALA/APPO's learner thread left for the next broadcast, if any.

    The thread snapshots the module every `broadcast_interval` updates (1 by default); the
    Algorithm takes the snapshot at its next update call and sends it to the env runners, which
    act with it until the next one: the env runners' weights lag the Learner's.
    """
    import ray

    pending = getattr(learner, "_learner_state_queue", None)
    if pending is None or pending.empty():
        return None
    snapshot = dict(pending.queue[0])
    for key, value in snapshot.items():
        if isinstance(value, ray.ObjectRef):
            snapshot[key] = ray.get(value)  # this process's own object store, at save time
    return snapshot


def set_pending_weights(learner: Any, snapshot: dict[str, Any]) -> None:
    """Make `snapshot` the weights the learner thread hands out next."""
    import ray
    from ray.rllib.core import COMPONENT_RL_MODULE

    pending = getattr(learner, "_learner_state_queue", None)
    if pending is None:
        return
    snapshot = dict(snapshot)
    if COMPONENT_RL_MODULE in snapshot:
        snapshot[COMPONENT_RL_MODULE] = ray.put(snapshot[COMPONENT_RL_MODULE])
    while not pending.empty():
        pending.get_nowait()
    pending.put_nowait(snapshot)
