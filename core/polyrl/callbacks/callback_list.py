"""CallbackList: the hooks of one run, called in a plain ordered loop (Keras's CallbackList).

The user's callbacks come first, in the order they were passed, then the installed integration
plugins (those implementing lifecycle hooks with `@polyrl.backend.hookimpl`). pluggy finds and validates
the installed plugins; calling the hooks of one run needs no plugin manager: each listener is
looked up once, when the list is built, so a hook nobody implements costs one dict lookup.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from polyrl.callbacks.base import Callback
from polyrl.errors import CallbackError, ConfigurationError
from polyrl.hookspecs import LIFECYCLE_HOOKS, PROJECT, LifecycleSpecs
from polyrl.redact import redact_uri

_IMPL_MARK = f"{PROJECT}_impl"  # the attribute pluggy's HookimplMarker sets on a decorated function


@dataclass(frozen=True)
class Listener:
    """One callback's implementation of one hook, and which of the hook's arguments it takes."""

    owner: object
    method: Callable[..., Any]
    argnames: tuple[str, ...]

    def __call__(self, arguments: dict[str, Any]) -> None:
        self.method(**{name: arguments[name] for name in self.argnames})


def _spec_argnames(hook: str) -> tuple[str, ...]:
    parameters = inspect.signature(getattr(LifecycleSpecs, hook)).parameters
    return tuple(name for name in parameters if name != "self")


_SPEC_ARGNAMES = {hook: _spec_argnames(hook) for hook in LIFECYCLE_HOOKS}


def _implementation(owner: object, hook: str) -> Callable[..., Any] | None:
    """`owner`'s method for `hook`: a Callback's override, or a method marked with @hookimpl."""
    method = getattr(owner, hook, None)
    if method is None or not callable(method):
        return None
    if isinstance(owner, Callback):
        # Only overridden methods listen, so the empty defaults cost nothing per step.
        return method if getattr(type(owner), hook) is not getattr(Callback, hook) else None
    return method if hasattr(method, _IMPL_MARK) else None


def _argnames(owner: object, hook: str, method: Callable[..., Any]) -> tuple[str, ...]:
    """The hook arguments `method` takes, by name; an unknown name is a ConfigurationError."""
    names = []
    for name, parameter in inspect.signature(method).parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if name not in _SPEC_ARGNAMES[hook]:
            raise ConfigurationError(
                f"{owner!r}.{hook} takes an argument {name!r}, but {hook} passes only "
                f"{list(_SPEC_ARGNAMES[hook])}: rename it or drop it"
            )
        names.append(name)
    return tuple(names)


class CallbackList:
    """The listeners of one run, per hook, in call order (callbacks, then integrations)."""

    def __init__(self, callbacks: Sequence[object] = (), integrations: Sequence[object] = ()) -> None:
        self.callbacks = list(callbacks)
        self._listeners: dict[str, list[Listener]] = {hook: [] for hook in LIFECYCLE_HOOKS}
        seen: set[int] = set()
        for owner in [*self.callbacks, *integrations]:
            if id(owner) in seen:  # the same object passed twice is called once, as pluggy did
                continue
            seen.add(id(owner))
            for hook in LIFECYCLE_HOOKS:
                method = _implementation(owner, hook)
                if method is not None:
                    self._listeners[hook].append(Listener(owner, method, _argnames(owner, hook, method)))

    def wants(self, hook: str) -> bool:
        """Whether any listener implements `hook` (lets hot loops skip building arguments)."""
        return bool(self._listeners[hook])

    def call(self, hook: str, **arguments: Any) -> None:
        """Call `hook` on every listener in order; a failure becomes a CallbackError naming it."""
        for listener in self._listeners[hook]:
            try:
                listener(arguments)
            except Exception as exc:
                # Redacted: the message reaches status.json, checkpoint metadata and the terminal,
                # and library errors quote URIs with their passwords (MLflow's do).
                raise CallbackError(
                    redact_uri(
                        f"callback {listener.owner!r} raised in {hook}: {type(exc).__name__}: {exc}. The "
                        "run stopped; the agent keeps what it learned and can be saved or trained again."
                    ),
                    callback=listener.owner,
                    hook=hook,
                ) from exc
