"""`djs worker --health-port`: GET /health answers the runner's health as JSON, 200 or 503.

A probe, not an API: one daemon thread serves one request at a time, each bounded by a socket
timeout, and every other path or method is a 404. It reads the runner's state and never
touches Postgres or Redis, so a slow dependency cannot make the probe itself hang.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from djs_cli.net import cannot_listen

log = logging.getLogger("djs.health")

_REQUEST_TIMEOUT_S = 5.0  # a client that sends nothing does not hold the probe longer

Report = Callable[[], dict[str, Any]]


def _handler_for(report: Report) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        timeout = _REQUEST_TIMEOUT_S
        server_version = "djs-worker"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/health":
                self._answer(404, {"error": {"message": f"no such path: {self.path[:100]}"}})
                return
            body = report()
            self._answer(200 if body["status"] == "ok" else 503, body)

        def _not_found(self) -> None:
            self._answer(404, {"error": {"message": "only GET /health is served"}})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_found

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)  # a probe every few seconds is not worth a log line

    return HealthHandler


class HealthProbe:
    """Serves GET /health on host:port from a daemon thread until close()."""

    def __init__(self, report: Report, host: str, port: int) -> None:
        try:
            self._server = HTTPServer((host, port), _handler_for(report))
        except OSError as exc:
            raise cannot_listen(host, port, exc) from exc
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="djs-health", daemon=True
        )

    def start(self) -> HealthProbe:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
