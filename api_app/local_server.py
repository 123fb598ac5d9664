"""`chalice local`'s fixes: its keep-alive stall, its tiny backlog, its 403 for an unknown
route, and a reloader child that outlived a SIGTERM. (`djs api` serves on granian instead:
api_app/wsgi.py.)"""

from __future__ import annotations

import os
import threading
import time

import chalice.local as chalice_local

# Measured on Chalice 1.34: without TCP_NODELAY every request on a kept-alive connection waits
# ~44 ms (Nagle + delayed ACK), and the default listen backlog of 5 drops connections.
_BACKLOG = 1024

_NOT_FOUND = b'{"error": {"code": "not_found", "message": "no such route", "details": null}}'


def tune_chalice_local() -> None:
    """Fix a stock `chalice local` (called from app.py when it runs): no keep-alive stall, a
    real backlog, unknown routes as our 404, and a reloader child that dies with its parent."""
    handler = chalice_local.ChaliceRequestHandler
    handler.disable_nagle_algorithm = True
    chalice_local.ThreadedHTTPServer.request_queue_size = _BACKLOG
    original = handler._send_error_response

    def send_error_response(
        self: chalice_local.ChaliceRequestHandler, error: chalice_local.LocalGatewayException
    ) -> None:
        # API Gateway answers an unknown route with 403 "Missing Authentication Token";
        # a local user is better served by a 404 in our own error shape.
        # (With an Authorization header, its words for an unknown route are others.)
        said = error.body or b""
        if isinstance(error, chalice_local.ForbiddenError) and any(
            words in said for words in (b"Missing Authentication", b"Authorization header requires")
        ):
            self._send_http_response(404, {"Content-Type": "application/json"}, _NOT_FOUND)
            return
        original(self, error)

    handler._send_error_response = send_error_response  # type: ignore[method-assign]
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
