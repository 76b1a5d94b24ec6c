"""Calls the callbacks of a run through pluggy, naming the callback that failed."""

from __future__ import annotations

from typing import Any

import pluggy

from polyrl.callbacks.base import Callback
from polyrl.errors import CallbackError
from polyrl.hookspecs import LIFECYCLE_HOOKS, PROJECT, LifecycleSpecs
from polyrl.redact import redact_uri


class _CallbackManager(pluggy.PluginManager):
    """A pluggy manager that accepts undecorated overrides of `Callback` methods as hooks."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None or not isinstance(plugin, Callback) or name not in LIFECYCLE_HOOKS:
            return opts
        # Only overridden methods become hooks, so empty defaults cost nothing per step.
        if getattr(type(plugin), name) is getattr(Callback, name):
            return None
        return {}


class CallbackDispatcher:
    """The hooks of one run: the user's callbacks (in list order) then installed integrations."""

    def __init__(self, callbacks: list[object], integrations: list[object]) -> None:
        self.manager = _CallbackManager(PROJECT)
        self.manager.add_hookspecs(LifecycleSpecs)
        self._callbacks = list(callbacks)
        # pluggy calls the last registered first, so register in reverse to keep list order.
        for plugin in reversed([*self._callbacks, *integrations]):
            if self.manager.is_registered(plugin):
                continue
            self.manager.register(plugin)
        self._plugins = [*self._callbacks, *integrations]

    def wants(self, hook: str) -> bool:
        """Whether any callback implements `hook` (lets hot loops skip building arguments)."""
        return bool(getattr(self.manager.hook, hook).get_hookimpls())

    def call(self, hook: str, **kwargs: Any) -> None:
        """Call `hook` on every callback implementing it; wrap a failure in CallbackError."""
        caller = getattr(self.manager.hook, hook)
        try:
            caller(**kwargs)
        except Exception as exc:
            culprit = self._culprit(exc)
            name = repr(culprit) if culprit is not None else "a callback"
            # Redacted: the message reaches status.json, checkpoint metadata and the terminal, and
            # library errors quote URIs with their passwords (MLflow's do).
            raise CallbackError(
                redact_uri(
                    f"callback {name} raised in {hook}: {type(exc).__name__}: {exc}. The run "
                    "stopped; the agent keeps what it learned and can be saved or trained again."
                ),
                callback=culprit,
                hook=hook,
            ) from exc

    def _culprit(self, exc: BaseException) -> object | None:
        """The registered callback whose method the exception came from (outermost frame)."""
        ids = {id(p): p for p in self._plugins}
        tb = exc.__traceback__
        while tb is not None:
            owner = tb.tb_frame.f_locals.get("self")
            if owner is not None and id(owner) in ids:
                return ids[id(owner)]
            tb = tb.tb_next
        return None
