"""Raw HTTP/1.1 over a socket, for what no HTTP library would send (tests/test_http_front.py)."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Exchange:  # what came back on one connection, whether the server closed it, when
    replies: list[Reply] = field(default_factory=list)
    closed: bool = False
    seconds: float = 0.0


def parse(raw: bytes) -> list[Reply]:
    """The complete responses in `raw` (Content-Length framed)."""
    replies = []
    while b"\r\n\r\n" in raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        pairs = (line.partition(":") for line in lines[1:])
        headers = {name.strip().lower(): value.strip() for name, _, value in pairs}
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        replies.append(Reply(int(lines[0].split(" ", 2)[1]), headers, rest[:length]))
        raw = rest[length:]
    return replies


def exchange(
    port: int, *parts: bytes, pause_s: float = 0.0, wait_s: float = 5.0, half_close: bool = False
) -> Exchange:
    """Send `parts` (pausing between them), then read until the server closes the connection
    or `wait_s` passes with nothing more to read."""
    started, received, closed = time.monotonic(), b"", False
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            for i, part in enumerate(parts):
                time.sleep(pause_s if i else 0)
                sock.sendall(part)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            sock.settimeout(wait_s)
            while chunk := sock.recv(65536):
                received += chunk
            closed = True
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            closed = True
    return Exchange(parse(received), closed, time.monotonic() - started)
