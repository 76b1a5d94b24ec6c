"""What every backend driver repeats, written once: the messages of its option checks.

Backend plugins import from here so that one rule gives one message on every backend.
"""

from __future__ import annotations

from collections.abc import Iterable

from polyrl._model import close_matches
from polyrl.errors import UnsupportedOptionError


def unknown_options_error(
    backend: str,
    algorithm: str,
    unknown: Iterable[str],
    valid: Iterable[str],
    valid_text: str | None = None,
) -> UnsupportedOptionError:
    """The error for `backend_options` keys the backend does not know, each with its closest valid key.

    `valid` is every accepted key (for suggestions); `valid_text` describes them when a plain
    sorted list would not (RLlib groups its keys by the config method that takes them).
    """
    names = sorted(set(unknown))
    known = sorted(set(valid))
    hints = {name: close_matches(name, known) for name in names}
    hint_text = "; ".join(f"{name!r}: did you mean {close}?" for name, close in hints.items() if close)
    return UnsupportedOptionError(
        f"{backend} {algorithm} does not accept backend_options {names}"
        f"{' (' + hint_text + ')' if hint_text else ''}. Valid keys: {valid_text or ', '.join(known)}"
    )
