"""How every `polyrl` command reports a user's mistake: one clear line on stderr and exit status 2.

Public for plugins: a command added through `polyrl_register_commands` wraps its body in
`guarded` and behaves like the built-in ones (`--debug` shows the traceback instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from pydantic import ValidationError

from polyrl.cli import render
from polyrl.errors import PolyrlError

#: The exit status of a command refused for a user-caused error (bad flag value, missing file, ...).
EXIT_USAGE = 2
T = TypeVar("T")


class DebugMode:
    """Whether `polyrl --debug` was given: set by the app's callback, read by `guarded`."""

    enabled = False


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body; user-caused errors print one clear message and exit with status 2.

    Caught: polyrl's own errors, pydantic validation errors, ValueError and ImportError (a
    missing optional library). Anything else is a bug and keeps its traceback.
    """
    try:
        return fn()
    except (PolyrlError, ValidationError, ValueError, ImportError) as exc:
        if DebugMode.enabled:
            raise
        if isinstance(exc, ValidationError):
            render.complain(render.validation_message(exc), label="error (invalid settings)")
        else:
            render.complain(str(exc), label=f"error ({type(exc).__name__})")
        render.complain("(for the traceback, run again as: polyrl --debug COMMAND ...)")
        raise typer.Exit(EXIT_USAGE) from None
