"""Env failures inside RLlib's env runners, turned into the polyrl errors every backend raises.

RLlib builds envs through `EnvCreator`, which uses `EnvSource.make`: polyrl's env guard turns an
exception of reset()/step() into `EnvStepError` and NaN/infinite data into `NonFiniteDataError`.
In a local env runner that error reaches the driver as it is (chained to the env's exception).
A remote env runner is ended by RLlib with sys.exit(1) on any exception, so the error itself
never arrives: the guard's `on_error` leaves a JSON description in Ray's internal key-value
store first, and `explain` rebuilds the same error type from it (without the chain, which cannot
cross processes; the env's exception type and text are in the message and attributes).
"""

from __future__ import annotations

import functools
import json
import weakref
from typing import Any

import gymnasium as gym
from polyrl.backend import EnvSource
from polyrl.env_guard import error_from_record, error_record
from polyrl.errors import EnvironmentCreationError, EnvStepError

from polyrl_rllib import encoders

#: Ray internal-KV key prefix under which an env runner leaves the description of its env's failure.
FAILURE_KEY = "polyrl/env-failure/"


class EnvFailure(Exception):
    """An env that failed to build in an env runner; carries the env name and the original error."""

    def __init__(self, env_name: str, where: str, error: BaseException) -> None:
        self.env_name = env_name
        self.where = where
        self.error_type = type(error).__name__
        self.error_text = str(error)
        super().__init__(f"env {env_name!r} raised in {where}: {self.error_type}: {self.error_text}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray pickles exceptions across processes; keep the readable parts only.
        return (_rebuild_failure, (self.env_name, self.where, self.error_type, self.error_text))


def _rebuild_failure(env_name: str, where: str, error_type: str, error_text: str) -> EnvFailure:
    failure = EnvFailure.__new__(EnvFailure)
    failure.env_name, failure.where = env_name, where
    failure.error_type, failure.error_text = error_type, error_text
    Exception.__init__(failure, f"env {env_name!r} raised in {where}: {error_type}: {error_text}")
    return failure


def _put(key: str, record: dict[str, Any]) -> None:
    """Leave `record` where the driver finds it even if the env runner process dies next."""
    try:
        import ray
        from ray.experimental.internal_kv import _internal_kv_put

        if ray.is_initialized():
            _internal_kv_put(FAILURE_KEY + key, json.dumps(record).encode(), overwrite=True)
    except Exception:  # best effort: the exception itself is still raised
        pass


def report_failure(key: str, failure: EnvFailure) -> None:
    """Record a failure to build the env."""
    _put(key, {"env": failure.env_name, "where": failure.where, "type": failure.error_type,
               "text": failure.error_text})  # fmt: skip


def report_step_error(key: str, error: EnvStepError) -> None:
    """The env guard's `on_error` in an env runner: record its EnvStepError before it is raised."""
    _put(key, {"step_error": error_record(error)})


def reported_failure(key: str) -> EnvFailure | EnvStepError | None:
    """The failure an env runner reported under `key`, if any; read once (a later error is new)."""
    try:
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get

        raw = _internal_kv_get(FAILURE_KEY + key)
        if raw:
            _internal_kv_del(FAILURE_KEY + key)
    except Exception:  # no Ray, no report
        return None
    if not raw:
        return None
    record = json.loads(raw)
    if "step_error" in record:
        return error_from_record(record["step_error"])
    return _rebuild_failure(record["env"], record["where"], record["type"], record["text"])


#: The EnvSource of every live creator of this process, by key: Ray's env registry pickles the
#: creator and the env runner of this process unpickles a copy, whose EnvSource would be a copy
#: too, and with it the normaliser (statistics the agent's act() and checkpoint never see).
_LIVE_SOURCES: weakref.WeakValueDictionary[str, EnvSource] = weakref.WeakValueDictionary()


class EnvCreator:
    """What Ray's env registry calls in every env runner: builds the polyrl env, guarded.

    Image observations come out float32 in [0, 1], channels last (`encoders.adapt_env`).
    Unpickled in the agent's process (the local env runner), it builds envs from the agent's
    own EnvSource, so polyrl's normalisation updates the agent's statistics; in a remote env
    runner, from the pickled copy.
    """

    def __init__(self, source: EnvSource, key: str) -> None:
        self.source = source
        self.key = key
        _LIVE_SOURCES[key] = source

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.key = state["key"]
        self.source = _LIVE_SOURCES.get(self.key, state["source"])

    def __call__(self, env_config: Any = None) -> gym.Env:
        try:
            env = self.source.make(on_error=functools.partial(report_step_error, self.key))
            return encoders.adapt_env(env)  # images as RLlib's CNN takes them
        except Exception as exc:
            failure = EnvFailure(self.source.name, "creation", exc)
            report_failure(self.key, failure)
            if isinstance(exc, EnvironmentCreationError):
                raise
            raise failure from exc


def chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its causes and contexts (through Ray's task errors' `cause`)."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return seen


def cause(explained: BaseException, exc: BaseException) -> BaseException | None:
    """What to raise `explained` from: the cause `explain` gave it, else RLlib's exception `exc`."""
    chained = isinstance(explained, EnvStepError) and explained.__suppress_context__
    return explained.__cause__ if chained else exc


def find(exc: BaseException, kind: type) -> BaseException | None:
    """The first exception of `kind` in the chain of `exc`."""
    return next((e for e in chain(exc) if isinstance(e, kind)), None)


def explain(exc: BaseException, doing: str, key: str, source: EnvSource) -> BaseException:
    """A polyrl error naming the env and the original exception, if the env caused `exc`.

    The guard's EnvStepError comes out as the same type with the same message, prefixed with
    what RLlib was doing. Raised in this process (a local env runner, which RLlib re-raises as
    a bare RuntimeError from it), it comes pre-chained like on the other backends: `__cause__`
    is the env's own exception (None for non-finite data); see `cause`.
    """
    found = find(exc, EnvStepError)
    failure = found or find(exc, EnvFailure) or reported_failure(key)
    if found is not None:
        reported_failure(key)  # the guard reported it too: consumed, so it is not reported again
    if isinstance(failure, EnvStepError):
        record = error_record(failure)
        record["message"] = f"in an RLlib env runner while {doing}: {record['message']}"
        error = error_from_record(record)
        if failure is found:
            error.__cause__ = found.__cause__
            error.__suppress_context__ = True  # `cause` reads this: chained already
        return error
    if isinstance(failure, EnvFailure):
        return EnvironmentCreationError(
            f"the environment {failure.env_name!r} failed to build in an RLlib env runner while "
            f"{doing}: {failure.error_type}: {failure.error_text}"
        )
    if source.gym_id is None:
        package = source.name.partition(":")[0].split(".")[0]
        missing = f"No module named '{package}'"
        if any(missing in str(e) for e in chain(exc)):
            return EnvironmentCreationError(
                f"Ray's worker processes cannot import the env factory {source.name!r} ({missing}) "
                f"while {doing}. Make its module importable on every node (install it, or put it on "
                "PYTHONPATH before Ray starts), or ship it by value with "
                f"ray.cloudpickle.register_pickle_by_value(<module {package}>) before creating the agent."
            )
    created = find(exc, EnvironmentCreationError)
    return created if created is not None else exc
