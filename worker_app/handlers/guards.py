"""The checks that keep the example handlers inside their bounds: a report path below the
reports directory, and a webhook that reaches only public addresses.

A job's payload is written by whoever can submit jobs: without these, `csv_report` wrote
anywhere the runner could (a `.pth` file in site-packages ran code at the next start) and
`webhook` fetched the API's own admin routes and the cloud metadata address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from common.handlers import NonRetryableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def report_path(base: Path, relative: str, suffix: str = ".csv") -> Path:
    """`relative` resolved below `base` (symlinks included); NonRetryableError otherwise."""
    if not relative or Path(relative).is_absolute():
        raise NonRetryableError(f"path must be relative to the reports directory: {relative!r}")
    if not relative.endswith(suffix):
        raise NonRetryableError(f"path must end with {suffix}: {relative!r}")
    root = base.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root:
        raise NonRetryableError(f"path leaves the reports directory: {relative!r}")
    return target


def open_new_file(path: Path) -> int:
    """Open for writing without following a symlink planted at the last moment."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except OSError as exc:
        raise NonRetryableError(f"cannot write {path.name}: {exc.strerror}") from exc


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


def vetted_address(host: str, port: int, allow: list[str]) -> str:
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
            "list it in DJS_WEBHOOK_ALLOW to allow it"
            if refused
            else f"webhook host {host!r} has no address"
        )
    return str(addresses[0])
