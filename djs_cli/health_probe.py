"""`djs worker --health-port`: the runner's probe and metrics port.

- GET /health answers the runner's health as JSON, 200 or 503. It reads the runner's state
  and never touches Postgres or Redis, so a slow dependency cannot make it hang;
- GET /ready: 200 when Postgres and Redis answer and every migration is applied, else 503
  naming what is not (common/readiness.py; bounded by the store's and Redis's timeouts);
- GET /metrics: this runner's Prometheus metrics (common/metrics.py), in the text format.

A probe, not an API: one daemon thread serves one request at a time, each bounded by a socket
timeout, and every other path or method is a 404. It has no access control: it listens on
127.0.0.1 unless --health-host says otherwise.
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
Ready = Callable[[], tuple[int, dict[str, Any]]]
Scrape = Callable[[], bytes]
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _not_served() -> tuple[int, dict[str, Any]]:
    return 404, {"error": {"message": "this probe serves GET /health only"}}


def _handler_for(
    report: Report, ready: Ready | None, scrape: Scrape | None
) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        timeout = _REQUEST_TIMEOUT_S
        server_version = "djs-worker"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                body = report()
                self._answer(200 if body["status"] == "ok" else 503, body)
            elif path == "/ready":
                self._answer(*(ready or _not_served)())
            elif path == "/metrics" and scrape is not None:
                self._send(200, scrape(), METRICS_TYPE)
            else:
                self._answer(404, {"error": {"message": f"no such path: {self.path[:100]}"}})

        def _not_found(self) -> None:
            self._answer(
                404, {"error": {"message": "only GET /health, /ready and /metrics are served"}}
            )

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_found

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            self._send(code, json.dumps(body).encode(), "application/json")

        def _send(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)  # a probe every few seconds is not worth a log line

    return HealthHandler


class HealthProbe:
    """Serves GET /health (and /ready, /metrics when given) on host:port from a daemon
    thread until close()."""

    def __init__(
        self,
        report: Report,
        host: str,
        port: int,
        ready: Ready | None = None,
        scrape: Scrape | None = None,
    ) -> None:
        try:
            self._server = HTTPServer((host, port), _handler_for(report, ready, scrape))
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
