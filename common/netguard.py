"""The guard on every request djs sends to an address someone else chose (the webhook
handler's payload.url, a queue's alert URL): only public addresses, after DNS resolution,
unless an allow-list setting names the host or its network. The caller connects to the
address returned, so a second DNS answer cannot differ from the one checked."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass

from common.handlers import NonRetryableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast only: no loopback, private, link-local (the metadata
    address 169.254.169.254), shared, reserved, multicast or unspecified address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def allowed(host: str, address: IPAddress, allow: list[str]) -> bool:
    """An address a webhook may connect to: public, or listed by host or network."""
    if is_public(address) or host in allow:
        return True
    for entry in allow:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name, compared above
    return False


def vetted_address(
    host: str, port: int, allow: list[str], setting: str = "DJS_WEBHOOK_ALLOW"
) -> str:
    """Resolve `host` once and return an address it may connect to; the caller connects to
    that address (not to the name again), so DNS cannot answer differently the second time."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NonRetryableError(f"webhook host {host!r} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    refused = [a for a in addresses if not allowed(host, a, allow)]
    if refused or not addresses:
        raise NonRetryableError(
            f"webhook host {host!r} resolves to an address that is not public ({refused[0]}); "
            f"list it in {setting} to allow it"
            if refused
            else f"webhook host {host!r} has no address"
        )
    return str(addresses[0])


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most the `read_bytes` asked for
    location: str | None


def post(
    url: urllib.parse.SplitResult,
    data: bytes,
    headers: dict[str, str],
    allow: list[str],
    timeout_s: float,
    read_bytes: int,
    setting: str = "DJS_WEBHOOK_ALLOW",
) -> Answer:
    """POST `data` to an http(s) `url` the caller has checked, connected to its vetted
    address; no redirect is followed and at most `read_bytes` of the answer are read."""
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    address = vetted_address(host, port, allow, setting)
    connection_class = (
        http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    )
    conn = connection_class(host, port, timeout=timeout_s)
    # Connect to the address that was checked, not to the name resolved a second time; TLS
    # still verifies the certificate against the host name.
    conn._create_connection = lambda _, *args: socket.create_connection((address, port), *args)  # type: ignore[attr-defined]
    try:
        conn.request(
            "POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), data, headers
        )
        response = conn.getresponse()
        return Answer(response.status, response.read(read_bytes), response.getheader("Location"))
    finally:
        conn.close()
