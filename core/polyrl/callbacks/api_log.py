"""APICallLogger: every call the core makes to the backend driver and the env, for plugin debugging."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from polyrl.callbacks.base import Callback
from polyrl.files import writable_file

if TYPE_CHECKING:
    from polyrl.callbacks.context import PlayContext, RunContext, TrainContext


class APICall(NamedTuple):
    """One call: `target` ("driver" or "env"), method name, duration, arguments summary."""

    target: str
    method: str
    seconds: float
    summary: str


class APICallLogger(Callback):
    """Log each call the core makes to the backend driver and to the env: name, arguments, duration.

    Covered: the driver's train_iteration (each training iteration), set_learning_rate and save,
    and in play (also evaluation) the env's make, reset, step, render and close and the policy's
    act. Calls a backend makes to its own training envs happen inside the library and are not
    seen. Each call goes to the `logging` logger `logger` (level DEBUG by default), to `path`
    (one tab-separated line per call, appended) if given, and to `calls`; `totals()` sums them up.
    `max_calls` bounds the memory `calls` uses (the oldest are dropped).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        logger: str | logging.Logger = "polyrl.api",
        level: int = logging.DEBUG,
        max_calls: int | None = 100_000,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        self.max_calls = max_calls
        self.calls: list[APICall] = []

    def _check_path(self) -> None:
        if self.path is not None:
            self.path = writable_file(self.path, repr(self))

    def on_train_begin(self, context: TrainContext) -> None:
        self._check_path()

    def on_play_begin(self, context: PlayContext) -> None:
        self._check_path()

    def on_api_call(
        self, context: RunContext | None, target: str, method: str, seconds: float, summary: str
    ) -> None:
        call = APICall(target, method, seconds, summary)
        self.calls.append(call)
        if self.max_calls is not None and len(self.calls) > self.max_calls:
            del self.calls[: len(self.calls) - self.max_calls]
        if self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, "%s.%s(%s) took %.6f s", target, method, summary, seconds)
        if self.path is not None:
            # Opened per call: calls also come after on_play_end (the env's close), and a
            # debugging log must not lose lines to buffering when the process dies.
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(f"{target}.{method}\t{seconds:.6f}\t{summary}\n")

    def totals(self) -> dict[str, tuple[int, float]]:
        """Per "target.method": number of calls and total seconds."""
        sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for call in self.calls:
            entry = sums[f"{call.target}.{call.method}"]
            entry[0] += 1
            entry[1] += call.seconds
        return {name: (int(count), seconds) for name, (count, seconds) in sums.items()}

    def __repr__(self) -> str:
        return f"APICallLogger({None if self.path is None else str(self.path)!r})"
