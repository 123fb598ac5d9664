"""Serve the API with Chalice's local server, minus its keep-alive stall and tiny backlog."""

from __future__ import annotations

import os
import sys
import threading
import time

import chalice.local as chalice_local
from chalice.app import Chalice
from chalice.config import Config

# Measured on Chalice 1.34: without TCP_NODELAY every request on a kept-alive connection waits
# ~44 ms (Nagle + delayed ACK), and the default listen backlog of 5 drops connections.
_BACKLOG = 1024

_NOT_FOUND = b'{"error": {"code": "not_found", "message": "no such route", "details": null}}'


class FastRequestHandler(chalice_local.ChaliceRequestHandler):
    disable_nagle_algorithm = True
    access_log = False

    def log_message(self, format: str, *args: object) -> None:
        # One stderr line per request costs more than the request at thousands a second.
        if self.access_log:
            super().log_message(format, *args)

    def _send_error_response(self, error: chalice_local.LocalGatewayException) -> None:
        # API Gateway answers an unknown route with 403 "Missing Authentication Token";
        # a local user is better served by a 404 in our own error shape.
        if isinstance(error, chalice_local.ForbiddenError) and b"Missing Authentication" in (
            error.body or b""
        ):
            self._send_http_response(404, {"Content-Type": "application/json"}, _NOT_FOUND)
            return
        super()._send_error_response(error)


class FastServer(chalice_local.ThreadedHTTPServer):
    request_queue_size = _BACKLOG
    allow_reuse_address = True
    # Several `djs api` processes may listen on one port; the kernel spreads connections.
    allow_reuse_port = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-response is not a server error worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def tune_chalice_local() -> None:
    """Apply the same fixes to a stock `chalice local` (called from app.py when it runs)."""
    handler = chalice_local.ChaliceRequestHandler
    handler.disable_nagle_algorithm = True
    handler._send_error_response = FastRequestHandler._send_error_response  # type: ignore[method-assign]
    chalice_local.ThreadedHTTPServer.request_queue_size = _BACKLOG
    if os.environ.get("CHALICE_WORKER"):
        _exit_with_parent()


def _exit_with_parent(poll_s: float = 0.2) -> None:
    """`chalice local` reloads by serving from a child process; a SIGTERM to the parent left
    that child serving for ever. The child leaves as soon as its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="djs-parent-watch", daemon=True).start()


def make_server(app: Chalice, host: str, port: int) -> chalice_local.LocalDevServer:
    """What `chalice.local.create_local_server` does, with the faster handler and server."""
    chalice_local.CustomLocalChalice.__bases__ = (chalice_local.LocalChalice, app.__class__)
    app.__class__ = chalice_local.CustomLocalChalice
    config = Config.create(chalice_app=app, app_name=app.app_name, lambda_timeout=900)
    return chalice_local.LocalDevServer(
        app, config, host, port, handler_cls=FastRequestHandler, server_cls=FastServer
    )
