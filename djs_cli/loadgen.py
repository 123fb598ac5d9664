"""A small keep-alive HTTP/1.1 load generator on asyncio streams, for `djs bench`.

It does one thing: POST JSON bodies over N kept-alive connections, optionally at a fixed
rate, and remember when each request was sent and answered. Bounded by the number of
requests it is given.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sent:
    """One request: wall-clock send time, answer time, status and the parsed body."""

    sent_at: float
    answered_at: float = 0.0
    status: int = 0
    body: Any = None


@dataclass
class LoadResult:
    requests: list[Sent] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.requests if r.status >= 300 or r.status == 0)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


def _request(host: str, port: int, path: str, body: bytes, key: str | None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode() + body


async def _connection(
    host: str,
    port: int,
    path: str,
    bodies: asyncio.Queue[bytes | None],
    result: LoadResult,
    pace: Callable[[], Any] | None,
    key: str | None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (body := await bodies.get()) is not None:
            if pace:
                await pace()
            request, sent = _request(host, port, path, body, key), Sent(sent_at=0.0)
            sent.sent_at = time.time()  # last, so no allocation (or GC) falls after it
            writer.write(request)
            status, raw = await _read_response(reader)
            sent.answered_at, sent.status = time.time(), status
            sent.body = json.loads(raw) if raw else None
            result.requests.append(sent)
    finally:
        writer.close()


async def post_many(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[Any],
    connections: int = 32,
    rate_per_s: float | None = None,
    key: str | None = None,
) -> LoadResult:
    """POST every body once over `connections` keep-alive connections; at most
    `rate_per_s` requests a second overall when a rate is given; with `key` as the bearer
    key."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(json.dumps(item).encode())
    for _ in range(connections):
        queue.put_nowait(None)
    result = LoadResult()
    pace = _pacer(rate_per_s) if rate_per_s else None
    await asyncio.gather(
        *(_connection(host, port, path, queue, result, pace, key) for _ in range(connections))
    )
    return result


def _pacer(rate_per_s: float) -> Callable[[], Any]:
    """Hand out send slots at a fixed rate, whichever connection asks."""
    interval = 1.0 / rate_per_s
    start = time.monotonic()
    issued = 0

    async def next_slot() -> None:
        nonlocal issued
        slot = start + issued * interval
        issued += 1
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    return next_slot
