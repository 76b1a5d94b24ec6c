"""RLlib Learner-side helpers of the driver: episode logging, optimizer learning rates, and
waiting for IMPALA/APPO's background learner thread."""

from __future__ import annotations

import sys
import time
from typing import Any

from polyrl.driverkit import optimizer_learning_rate, set_optimizer_learning_rate
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.utils.schedules.scheduler import Scheduler

#: Where the driver's on_episode_end callback logs each finished episode.
EPISODES_KEY = "polyrl_episodes"


def record_episode(*, episode: Any, metrics_logger: Any, prev_episode_chunks: Any = (), **_: Any) -> None:
    """RLlib on_episode_end callback: log (return, length) of the whole episode, unreduced."""
    chunks = [*(prev_episode_chunks or ()), episode]
    total = float(sum(chunk.get_return() for chunk in chunks))
    # Not sum(len(chunk)): with a local env runner PPO's learner connector appends one artificial
    # (zero-reward) step to truncated chunks in place, which would count once per cut.
    length = int(episode.t - chunks[0].t_started)
    metrics_logger.log_value(EPISODES_KEY, {"return": total, "length": length}, reduce="item_series")


def logged_episodes(logged: Any) -> list[tuple[float, int]]:
    """The episodes RLlib's item_series reduced to: NaN for none, the bare item for one, else a list."""
    if isinstance(logged, dict):
        logged = [logged]
    if not isinstance(logged, list | tuple):
        return []
    return [(float(item["return"]), int(item["length"])) for item in logged]


def set_learner_lrs(learner: Any, rates: dict[str, float]) -> None:
    """Set the named optimizers' learning rates and make RLlib's lr schedulers keep them."""
    for name, optimizer in learner.get_optimizers_for_module(DEFAULT_MODULE_ID):
        if name not in rates:
            continue
        set_optimizer_learning_rate([optimizer], rates[name])
        # The Learner re-applies its scheduler after every update; replace it or the change is undone.
        learner._optimizer_lr_schedules[optimizer] = Scheduler(
            fixed_value_or_schedule=rates[name], framework="torch", device=learner._device
        )


def learner_lrs(learner: Any) -> dict[str, float]:
    return {
        name: optimizer_learning_rate([optimizer])
        for name, optimizer in learner.get_optimizers_for_module(DEFAULT_MODULE_ID)
    }


# -- scheduled values (polyrl.schedules), set by the core before every iteration ----------------
def _fixed(value: float, device: Any = None) -> Scheduler:
    """An RLlib Scheduler pinned to `value` (its update() then returns the value as it is)."""
    return Scheduler(fixed_value_or_schedule=float(value), framework="torch", device=device)


def set_learner_scheduled(learner: Any, name: str, value: float) -> None:
    """PPO's clip_param (read from the Learner's config copy by every loss) or its entropy
    coefficient (a Scheduler the Learner updates after each update: replaced by a fixed one)."""
    learner.config._is_frozen = False  # the Learner's own copy (built with copy_frozen=False)
    if name == "clip_range":
        learner.config.clip_param = float(value)
    elif name == "ent_coef":
        learner.config.entropy_coeff = float(value)
        learner.entropy_coeff_schedulers_per_module[DEFAULT_MODULE_ID] = _fixed(value, learner._device)


def learner_scheduled(learner: Any, name: str) -> float | None:
    """The clip_param or entropy coefficient a Learner's loss uses now."""
    if name == "clip_range":
        return float(learner.config.get_config_for_module(DEFAULT_MODULE_ID).clip_param)
    if name == "ent_coef":
        value = learner.entropy_coeff_schedulers_per_module[DEFAULT_MODULE_ID].get_current_value()
        return float(value.item() if hasattr(value, "item") else value)
    return None


def _default_module(holder: Any) -> Any:
    """The default RLModule of an EnvRunner or Learner (inside its MultiRLModule, if any)."""
    module = getattr(holder, "module", None)
    if module is not None and hasattr(module, "keys"):
        return module.get(DEFAULT_MODULE_ID) if DEFAULT_MODULE_ID in module else None
    return module


def set_module_epsilon(holder: Any, value: float) -> None:
    """DQN: pin the epsilon-greedy Scheduler of an EnvRunner's (or Learner's) RLModule to `value`."""
    module = _default_module(holder)
    if module is not None and hasattr(module, "epsilon_schedule"):
        module.epsilon_schedule = _fixed(value)


def set_module_epsilon_schedule(holder: Any, schedule: list[list[float]]) -> None:
    """DQN: give an EnvRunner's (or Learner's) RLModule a piecewise epsilon schedule over env steps."""
    module = _default_module(holder)
    if module is not None and hasattr(module, "epsilon_schedule"):
        module.epsilon_schedule = Scheduler(fixed_value_or_schedule=schedule, framework="torch", device=None)


def module_epsilon(holder: Any) -> float | None:
    """The epsilon an EnvRunner's DQN RLModule explores with now (None: no such module)."""
    module = _default_module(holder)
    schedule = getattr(module, "epsilon_schedule", None)
    if schedule is None:
        return None
    value = schedule.get_current_value()
    return float(value.item() if hasattr(value, "item") else value)


# -- IMPALA/APPO: the Learner's background thread ----------------------------------------------
#: Seconds to wait for the IMPALA/APPO learner thread to finish the batches of an iteration.
LEARNER_THREAD_TIMEOUT = 600.0


def _circular_buffer_waiting(queue: Any, thread: Any) -> bool:
    """Whether APPO's learner thread is idle in CircularBuffer.get's wait loop (nothing to take).

    The loop is `while len(self) == 0: time.sleep(...)`; the thread's innermost Python frame then
    is `get` on one of those two lines. Taking a batch and updating happen past them.
    """
    import inspect

    frame = sys._current_frames().get(thread.ident)
    get = getattr(type(queue), "get", None)
    if frame is None or get is None or frame.f_code is not get.__code__:
        return False
    lines, first = inspect.getsourcelines(get)
    waiting = {first + i for i, text in enumerate(lines) if "len(self) == 0" in text or "time.sleep" in text}
    return frame.f_lineno in waiting


def wait_for_learner_thread(learner: Any) -> None:
    """Block until IMPALA/APPO's learner thread has applied every batch it was given.

    RLlib's IMPALA/APPO Learner updates in a background thread, even locally; without this an
    iteration could end (and be saved, and its parameters read) with batches still queued.
    """
    thread = getattr(learner, "_learner_thread", None)
    queue = getattr(learner, "_learner_thread_in_queue", None)
    if thread is None or queue is None or not thread.is_alive():
        return

    def idle() -> bool:
        if hasattr(queue, "unfinished_tasks"):  # queue.Queue: task_done() follows each update
            return queue.unfinished_tasks == 0
        return queue.qsize() == 0 and _circular_buffer_waiting(queue, thread)

    deadline = time.monotonic() + LEARNER_THREAD_TIMEOUT
    while not idle():
        if not thread.is_alive():
            raise RuntimeError("RLlib's learner thread stopped with batches left to learn from")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"RLlib's learner thread did not finish its batches in {LEARNER_THREAD_TIMEOUT:g} s"
            )
        time.sleep(0.0005)
