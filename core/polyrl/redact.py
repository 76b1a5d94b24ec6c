"""Hide the secrets URIs carry before polyrl writes or prints them.

A tracking URI such as `http://user:password@host/` or a signed URL with `?token=...` ends up in
error messages (MLflow quotes the full URI when a request fails), in a callback's repr and from
there in status.json, output.log and the CLI's error lines. `redact_uri` replaces the password of
every `scheme://user:password@` and the value of every secret-looking query parameter with
`***`; the rest of the text (host, path, user name) stays, so the message still says where.
"""

from __future__ import annotations

import re

#: What a redacted secret becomes.
MASK = "***"

# `scheme://user:password@`: the password may itself hold "@" (unencoded, against the RFC but
# common), so it runs up to the last "@" before the host; it never crosses white space, a quote
# or the path.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*:)(?P<secret>[^\s/?#'\"]*)@")
# `?token=...`, `&X-Amz-Signature=...`, `;password=...`: a key naming a secret, then its value.
_SECRET_KEY = (
    r"[\w.\-]*(?:token|secret|passw(?:or)?d|pwd|access_?key|api_?key|signature|credential)[\w.\-]*"
    r"|sig|key|auth"
)
_QUERY = re.compile(rf"(?P<head>[?&;](?:{_SECRET_KEY})=)(?P<secret>[^&#\s'\"]+)", re.IGNORECASE)


def redact_uri(text: str) -> str:
    """`text` with URI passwords and secret query values replaced by `***`.

    Works on any text (a bare URI, an error message, a traceback, a JSON document): only the
    secrets change, so a redacted URI still names its scheme, user, host and path.

    >>> redact_uri("http://user:hunter2@host:5000/api?run=1&token=abc")
    'http://user:***@host:5000/api?run=1&token=***'
    """
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    if "=" in text:
        text = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    return text


def redact_optional(text: str | None) -> str | None:
    """redact_uri for optional text: None stays None."""
    return None if text is None else redact_uri(text)
