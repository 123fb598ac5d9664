"""The API's address as the CLI checks it: is the port free, does the server answer /health."""

from __future__ import annotations

import errno
import http.client
import socket

from djs_cli.errors import CliError

# What a client dials for a server listening on every address.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def cannot_listen(host: str, port: int, exc: OSError) -> CliError:
    if exc.errno == errno.EADDRINUSE:
        return CliError(f"port {port} on {host} is in use (is another djs api or djs dev running?)")
    return CliError(f"cannot listen on {host}:{port} ({exc.strerror or exc})")


def ensure_port_free(host: str, port: int) -> None:
    """Raise CliError unless a server could listen on host:port now.

    The server itself binds with SO_REUSEPORT (several `djs api` processes share a port), so
    it would not notice another djs there; this test binds without it. SO_REUSEADDR, as the
    server sets it, keeps connections of a stopped server in TIME_WAIT from counting.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise cannot_listen(host, port, exc) from exc


def client_url(host: str, port: int) -> str:
    """The URL a local client uses for a server listening on host:port."""
    host = _LOOPBACK.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def answers_health(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True once GET /health answers 200 (Postgres and Redis answer too)."""
    conn = http.client.HTTPConnection(_LOOPBACK.get(host, host), port, timeout=timeout_s)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
