"""Connect to a Ray cluster by address, or give up with RayConnectionError after a bounded wait.

`ray.init(address=...)` does not give up on an address nothing answers at: its GCS client
retries (20 attempts of up to ~40 s each in Ray 2.5x, so ~15 minutes) and Ray Client backs off
over several attempts. polyrl's grid (`--ray-address`) and its RLlib backend (backend_options
`address`) connect through `connect_ray` instead, which

1. works out the host:port Ray will dial (RAY_ADDRESS and the last `ray start` count for
   "auto", as they do for Ray; `ray://host:port` is Ray Client's port);
2. opens a TCP connection to it within the timeout: a refused port fails at once, a
   black-holed host or a dropped packet after the timeout;
3. checks that the peer speaks gRPC (HTTP/2), as Ray's GCS and Ray Client servers do: a port
   that accepts but never answers, or a web server (the dashboard's 8265), fails within the
   timeout instead of leaving Ray retrying;
4. only then calls ray.init, with Ray's own waits bounded by the same timeout where Ray reads
   them (RAY_gcs_server_port_wait_time_s always; the C++ GCS connect timeouts only when Ray is
   not imported yet, because Ray reads those once, at import).

Nothing here imports Ray at module import; `import polyrl` stays light.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from polyrl.errors import ConfigurationError, RayConnectionError
from polyrl.redact import redact_uri

#: Seconds polyrl waits for a Ray address to answer unless told otherwise.
DEFAULT_CONNECT_TIMEOUT = 30.0
#: Ray Client's default port (`ray://host` without one).
CLIENT_PORT = 10001
#: The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with SETTINGS.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS_FRAME = 0x04
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Endpoint:
    """Where ray.init will connect: a host and port, and whether it is a Ray Client server."""

    host: str
    port: int
    client: bool
    source: str  # where the address came from, for messages ("" when given directly)


def check_connect_timeout(value: object, setting: str = "ray_connect_timeout") -> float:
    """`value` as a positive, finite number of seconds; ConfigurationError naming `setting` otherwise."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and value > 0:  # type: ignore[arg-type,operator]
        return float(value)  # type: ignore[arg-type]
    raise ConfigurationError(
        f"{setting} must be a positive number of seconds (default {DEFAULT_CONNECT_TIMEOUT:g}), got {value!r}"
    )


def _last_started_cluster() -> str | None:
    """The address the last `ray start` on this machine recorded, which Ray uses for "auto"."""
    try:
        from ray._private.utils import read_ray_address  # private, hence the broad guard

        return read_ray_address(None) or None
    except Exception:  # another Ray layout: let ray.init find it (and fail) on its own
        return None


def _split_host_port(text: str, default_port: int | None, address: str) -> tuple[str, int]:
    host, colon, port_text = text.rpartition(":")
    if not colon or "]" in port_text:  # no port ("host", "[::1]")
        host, port_text = text, ""
    host = host.strip("[]")
    if not port_text:
        if default_port is None:
            raise ConfigurationError(
                f"the Ray address {address!r} has no port; give host:port (e.g. 127.0.0.1:6379, "
                "the GCS port `ray start --head` prints), ray://host:10001 for Ray Client, or auto"
            )
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host:
        raise ConfigurationError(
            f"the Ray address {address!r} is not host:port; give e.g. 127.0.0.1:6379, "
            "ray://host:10001 or auto"
        )
    return host, int(port_text)


def resolve_endpoint(address: str | None) -> Endpoint | None:
    """The host:port `ray.init(address=address)` will dial; None when Ray starts a local instance.

    As in ray.init: RAY_ADDRESS replaces an address of None or "auto", and "auto" falls back to
    the cluster the last `ray start` on this machine recorded. None is also returned for "auto"
    with no cluster recorded (ray.init then fails at once on its own) and for schemes other than
    ray:// (their own client modules connect).
    """
    source = ""
    effective = address.strip() if isinstance(address, str) else None
    if effective in (None, "auto"):
        from_environment = os.environ.get("RAY_ADDRESS", "").strip()
        if from_environment:
            effective, source = from_environment, "RAY_ADDRESS"
        elif effective == "auto":
            effective, source = _last_started_cluster(), "the last `ray start` on this machine"
    if effective in (None, "", "auto", "local"):
        return None
    if "://" in effective:
        scheme, _, rest = effective.partition("://")
        if scheme.lower() != "ray":
            return None
        rest = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        host, port = _split_host_port(rest, CLIENT_PORT, effective)
        return Endpoint(host, port, client=True, source=source)
    host, port = _split_host_port(effective, None, effective)
    return Endpoint(host, port, client=False, source=source)


#: Why an endpoint is no Ray server, and whether waiting longer could have helped.
Failure = tuple[str, bool]


def probe(endpoint: Endpoint, timeout: float) -> Failure | None:
    """Why `endpoint` is no Ray server answering within `timeout` s (and whether it timed out)."""
    deadline = time.monotonic() + timeout
    try:
        connection = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s (the host is down, or a firewall drops the packets)", True
    except ConnectionRefusedError:
        return "the connection was refused (nothing listens on that port)", False
    except socket.gaierror as exc:
        return f"the host name {endpoint.host!r} does not resolve ({exc.strerror or exc})", False
    except OSError as exc:
        return f"cannot open a connection ({exc.strerror or exc})", False
    with connection:
        if os.environ.get("RAY_USE_TLS", "").strip().lower() in _TRUE:
            return None  # a TLS server would not answer a plaintext preface; TCP must do
        return _speaks_grpc(connection, deadline, timeout)


def _speaks_grpc(connection: socket.socket, deadline: float, timeout: float) -> Failure | None:
    """Send the HTTP/2 preface; a gRPC server (Ray's GCS, Ray Client) answers with SETTINGS."""
    received = b""
    try:
        connection.sendall(_HTTP2_PREFACE)
        while len(received) < 9:
            connection.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = connection.recv(9 - len(received))
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        if not received:
            return (
                f"something accepted the connection but sent no answer within {timeout:g} s, "
                "so it does not speak Ray's protocol (gRPC)",
                True,
            )
    except OSError as exc:
        return f"the connection broke before the server answered ({exc.strerror or exc})", False
    if len(received) >= 4 and received[3] == _SETTINGS_FRAME:
        return None
    if received.startswith(b"HTTP/"):
        return (
            "a web server answers there, not Ray's GCS (the dashboard's port, 8265 by default, is "
            "not the cluster address)",
            False,
        )
    if not received:
        return "the server closed the connection without answering (not Ray's protocol, or TLS)", False
    return "the server answers, but not in Ray's protocol (gRPC)", False


@contextlib.contextmanager
def bounded_ray_waits(timeout: float) -> Iterator[None]:
    """Environment knobs that bound Ray's own connect retries by `timeout`, restored afterwards.

    Values the user set are kept. The C++ knobs only matter when Ray is imported inside the
    block (Ray reads them once, at import); the Python one is read by each ray.init.
    """
    seconds = str(max(1, math.ceil(timeout)))
    knobs = {"RAY_gcs_server_port_wait_time_s": seconds}  # GCS client attempts, ~1 s apart
    if "ray" not in sys.modules:
        knobs["RAY_py_gcs_connect_timeout_s"] = seconds  # each attempt's wait for the GCS (30)
        knobs["RAY_gcs_rpc_server_connect_timeout_s"] = str(min(5, int(seconds)))  # per channel (5)
    added = [name for name in knobs if name not in os.environ]
    for name in added:
        os.environ[name] = knobs[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _connection_advice(address: str, exc: BaseException) -> str | None:
    """A specific fix for a failure Ray reported after it reached the cluster, if polyrl knows one."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any("authentication" in f"{type(e).__name__} {e}".lower() for e in chain):
        return (
            f"the Ray cluster at {address!r} uses token authentication and this process sent no "
            "token: Ray sends one to an explicit address only with RAY_AUTH_MODE=token set; export "
            "it (and RAY_AUTH_TOKEN, unless the token is in ~/.ray/auth_token) before starting Python"
        )
    return None


def ensure_reachable(
    address: str, timeout: float, *, instead: str, timeout_setting: str
) -> tuple[Endpoint | None, str]:
    """Probe the endpoint `address` names; RayConnectionError if it does not answer as Ray.

    Returns the endpoint (None for forms that are not probed) and how messages name the address.
    """
    endpoint = resolve_endpoint(address)
    where = f"{address!r}"
    if endpoint is not None and endpoint.source:
        where += f" ({endpoint.host}:{endpoint.port}, from {endpoint.source})"
    if endpoint is not None:
        failure = probe(endpoint, timeout)
        if failure is not None:
            reason, timed_out = failure
            raise RayConnectionError(
                _message(where, reason, endpoint, timeout, timed_out, instead, timeout_setting)
            )
    return endpoint, where


def connect_ray(
    address: str,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    *,
    instead: str = "drop the address to run on this machine",
    timeout_setting: str = "the connect timeout",
    **init_kwargs: Any,
) -> None:
    """`ray.init(address=address, **init_kwargs)`, giving up with RayConnectionError after ~`timeout` s.

    `instead` says how to run without the cluster and `timeout_setting` names the option that
    sets `timeout` (both end up in the error message, which also says what to check).
    Raises ConfigurationError for an address that is not an address, and for a missing ray.
    """
    timeout = check_connect_timeout(timeout, timeout_setting)
    endpoint, where = ensure_reachable(address, timeout, instead=instead, timeout_setting=timeout_setting)
    with bounded_ray_waits(timeout):
        try:
            import ray
        except ImportError as exc:
            raise ConfigurationError(
                "connecting to a Ray cluster needs ray: pip install 'polyrl[rllib]' (or ray)"
            ) from exc
        try:
            ray.init(address=address, **init_kwargs)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            advice = _connection_advice(address, exc)
            if advice is not None:
                raise RayConnectionError(redact_uri(advice)) from exc
            reason = f"Ray gave up: {type(exc).__name__}: {exc}"
            timed_out = "time" in f"{exc} {exc.__cause__}".lower()  # "timed out", "timeout"
            raise RayConnectionError(
                _message(where, reason, endpoint, timeout, timed_out, instead, timeout_setting)
            ) from exc


def _message(
    where: str,
    reason: str,
    endpoint: Endpoint | None,
    timeout: float,
    timed_out: bool,
    instead: str,
    timeout_setting: str,
) -> str:
    if endpoint is not None and endpoint.client:
        port = f"that port {endpoint.port} is Ray Client's (`ray start --head` opens 10001 by default)"
    else:
        port = (
            "that the port is the GCS port `ray start --head` printed (6379 by default; Ray "
            "Client's 10001 needs ray://host:10001)"
        )
    text = (
        f"cannot connect to the Ray cluster at {where}: {reason}. Check that Ray runs there "
        f"(`ray status` on the head node) and {port}, or {instead}."
    )
    if timed_out:
        text += f" On a slow network, raise {timeout_setting} (now {timeout:g} s)."
    return redact_uri(text)
