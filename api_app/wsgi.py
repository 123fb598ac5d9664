"""The API as a WSGI application, for a production HTTP server (`djs api` runs it on granian).

The same Chalice app as `chalice local` and Lambda: a request goes through chalice.local's
LocalGateway, which matches the route, builds the API Gateway event, runs custom authorizers
and calls the app. This module adds what an HTTP front owes its clients and the API's error
shape: a body limit checked before the body is read (413), chunked bodies refused (411),
`X-Content-Type-Options: nosniff`, no version banner, and `{"error": {"code", "message",
"details"}}` for every error the app or the gateway answers (404 unknown route, 401/403 from
an authorizer, 500). Framing errors (400), slow and idle clients are the server's part: see
djs_cli/http_front.py.

    granian --interface wsgi --http 1 api_app.wsgi:application   (what `djs api` runs)
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import chalice.local as chalice_local
from chalice.app import Chalice
from chalice.config import Config
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_app.authorizer_cache import CachingAuthorizer
from api_app.cors import allowed_origin_headers, parse_origins
from api_app.errors import error_body
from api_app.factory import create_app
from common import metrics
from common.services import Services
from common.settings import Settings

log = logging.getLogger("djs.api")
access = logging.getLogger("djs.access")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Headers = list[tuple[str, str]]

MIB = 1024 * 1024


class FrontSettings(BaseSettings):
    """What the HTTP front adds to Settings, read once at start-up (DJS_HTTP_...)."""

    model_config = SettingsConfigDict(env_prefix="DJS_HTTP_", extra="ignore")

    # The largest request body accepted; a larger one is refused (413) before it is read.
    max_body_bytes: int = MIB
    # One log line per request (djs api --access-log): method, route, status, duration_ms
    # and the key's id (never the key).
    access_log: bool = False


# Every response carries these. `Server` replaces the server's own banner: it names the
# service, not the software and its version.
_ALWAYS: Headers = [("X-Content-Type-Options", "nosniff"), ("Server", "djs")]
_OWN = frozenset(name.lower() for name, _ in _ALWAYS)
# The server frames the response itself; a value from the app could only contradict it.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}
# Kept as in the request target (RFC 3986 pchar), so a path reaches Chalice as `chalice
# local` passes it: %2F stays inside one path segment, %3F is not a query.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Refused(Exception):
    """A request answered with an error before the app sees it; the connection is closed."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def thread_local_requests(app: Chalice) -> Chalice:
    """Requests run on many threads: give the app a thread-local `current_request`.

    `chalice local` does this by rebasing its one CustomLocalChalice class onto the app's
    class; a class of the app's own (with its own thread-local) does the same without
    touching a class another app may be using.
    """
    if not isinstance(app, chalice_local.LocalChalice):
        cls = app.__class__
        namespace = {"_THREAD_LOCAL": threading.local(), "__module__": __name__}
        app.__class__ = type(
            f"ThreadLocal{cls.__name__}", (chalice_local.LocalChalice, cls), namespace
        )
    return app


@dataclass(frozen=True)
class _ResolvedConfig:
    """What LocalGateway reads from its Config for every request's Lambda context, read once:
    each read of a chalice Config walks its layers (3 reads, 4 us a request)."""

    function_name: str
    lambda_memory_size: int | None
    lambda_timeout: int | None

    @classmethod
    def of(cls, app: Chalice) -> _ResolvedConfig:
        config = Config.create(chalice_app=app, app_name=app.app_name, lambda_timeout=900)
        return cls(config.function_name, config.lambda_memory_size, config.lambda_timeout)


class ChaliceWSGI:
    """A WSGI application that serves a Chalice app the way API Gateway would."""

    def __init__(
        self,
        app: Chalice,
        max_body_bytes: int = MIB,
        cors_origins: frozenset[str] = frozenset(),
        access_log: bool | None = None,
    ) -> None:
        self.app = thread_local_requests(app)
        # The authorizer's 401/403 and the gateway's own refusals never reach the app's CORS
        # middleware: without these headers a dashboard on another origin could not read
        # them (a browser shows the script a network error, not "sign in again").
        self.cors_origins = cors_origins
        config = cast(Config, _ResolvedConfig.of(app))
        self.gateway = chalice_local.LocalGateway(app, config)
        self.authorizer = CachingAuthorizer(app)  # what API Gateway does, too
        self.gateway._authorizer = self.authorizer
        # Only for the metrics of refusals the app never sees (it counts its own answers).
        self._routes = chalice_local.RouteMatcher(list(app.routes))
        # None: as the front was told (djs api --access-log sets DJS_HTTP_ACCESS_LOG), so
        # an application of one's own served by the front logs its requests too.
        self.access_log = FrontSettings().access_log if access_log is None else access_log
        self.max_body_bytes = max_body_bytes
        # Servers copy the process environment into every environ (PEP 3333 allows it), so
        # an HTTP_PROXY set for the process would read as a request header.
        self._inherited = {k: v for k, v in os.environ.items() if k.startswith("HTTP_")}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.access_log:
            return self._serve(environ, start_response)[1]
        started = time.monotonic()
        self.authorizer.forget()
        status, answer = self._serve(environ, start_response)
        seen = self.authorizer.seen
        access.info(
            "request",
            extra={
                "method": environ.get("REQUEST_METHOD"),
                # The route's template (/jobs/{raw_id}), not the path: no ids, no query.
                "route": seen.route,
                "status": status,
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
                "key_id": seen.key_id,
            },
        )
        return answer

    def _serve(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> tuple[int, list[bytes]]:
        try:
            body = self._body(environ)
            response = self.gateway.handle_request(
                environ["REQUEST_METHOD"], _target(environ), self._headers(environ), body
            )
            status, headers, payload = _from_gateway(response)
        except _Refused as refused:
            status, headers, payload = _error(
                refused.status, refused.code, refused.message, refused.details
            )
            headers.append(("Connection", "close"))
            self._count_refusal(environ, status)
        except chalice_local.LocalGatewayException as exc:
            status, headers, payload = _gateway_error(exc)
            self._count_refusal(environ, status)
            if self.cors_origins:
                origin = environ.get("HTTP_ORIGIN")
                headers += [("Vary", "Origin")]
                headers += allowed_origin_headers(origin, self.cors_origins).items()
        except Exception:
            log.exception("unhandled error")
            status, headers, payload = _error(500, "internal_error", "an internal error occurred")
            self._count_refusal(environ, status)
        # The front's own headers replace the app's (the dashboard's routes send nosniff too,
        # for `chalice local`): a header sent twice would be read as a list.
        headers = [(name, value) for name, value in headers if name.lower() not in _OWN]
        start_response(_STATUS_LINES.get(status, f"{status} Unknown"), headers + _ALWAYS)
        return status, [payload]

    def _count_refusal(self, environ: dict[str, Any], status: int) -> None:
        """An answer the app's middleware did not see (api_app/http_metrics.py): counted by
        its route template, or `unmatched`, never by its raw path."""
        try:
            route = self._routes.match_route(environ.get("PATH_INFO", "/")).route
        except ValueError:
            route = "unmatched"
        method = str(environ.get("REQUEST_METHOD", ""))[:16]
        if method not in _METHODS:
            method = "other"
        metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The request body (None when there is none, as `chalice local` passes it)."""
        if environ.get("HTTP_TRANSFER_ENCODING"):
            # The server decodes chunked bodies but hides a malformed one (it reads as a
            # shorter body): refused, so only a body whose length is known ever runs.
            raise _Refused(411, "length_required", "send the body with a Content-Length")
        length = environ.get("CONTENT_LENGTH")
        if not length:
            return None
        size = int(length)  # the server has checked it is one decimal number
        if size > self.max_body_bytes:
            raise _Refused(
                413,
                "payload_too_large",
                f"the body is {size} bytes; the limit is {self.max_body_bytes}",
                {"limit_bytes": self.max_body_bytes},
            )
        if size == 0:
            return None
        body: bytes = environ["wsgi.input"].read(size)
        if len(body) < size:  # the client went away, or the body was cut short
            raise _Refused(400, "incomplete_body", f"the body ended after {len(body)} bytes")
        return body

    def _headers(self, environ: dict[str, Any]) -> dict[str, str]:
        """The request's headers, as `chalice local` passes them (values of a repeated header
        joined with commas by the server)."""
        inherited = self._inherited
        headers = {
            k[5:].replace("_", "-").lower(): v
            for k, v in environ.items()
            if k[:5] == "HTTP_" and inherited.get(k) != v
        }
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        if "CONTENT_LENGTH" in environ:
            headers["content-length"] = environ["CONTENT_LENGTH"]
        return headers


def _target(environ: dict[str, Any]) -> str:
    # PATH_INFO is percent-decoded, as latin-1 (PEP 3333).
    path = quote(environ.get("PATH_INFO", "/").encode("latin-1"), safe=_PATH_SAFE)
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def _from_gateway(response: dict[str, Any]) -> tuple[int, Headers, bytes]:
    """Status, headers and body from the API Gateway response the app returned."""
    headers: Headers = [
        (name, value)
        for name, value in response.get("headers", {}).items()
        if name.lower() not in _FRAMING
    ]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        if name.lower() not in _FRAMING:
            headers += [(name, str(v)) for v in values]
    body = response.get("body")
    if body is None:
        payload = b""
    elif response.get("isBase64Encoded"):
        payload = base64.b64decode(body)
    else:
        payload = body.encode() if isinstance(body, str) else body
    if payload and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))  # what `chalice local` sends
    return int(response["statusCode"]), headers, payload


def _error(status: int, code: str, message: str, details: Any = None) -> tuple[int, Headers, bytes]:
    body = json.dumps(error_body(code, message, details)).encode()
    return status, [("Content-Type", "application/json")], body


# The gateway's own answers (chalice.local): an unknown route is API Gateway's 403 "Missing
# Authentication Token" (or a complaint about the Authorization header); an authorizer's
# refusal is 401 or 403; an authorizer that returned nothing is 500.
_UNKNOWN_ROUTE = (b"Missing Authentication Token", b"Authorization header requires")
_GATEWAY_CODES = {
    401: "unauthorized",
    403: "forbidden",
    500: "authorizer_error",
    503: "dependency_unavailable",
}


def _gateway_error(exc: chalice_local.LocalGatewayException) -> tuple[int, Headers, bytes]:
    raw = exc.body or b""
    if isinstance(exc, chalice_local.ForbiddenError) and any(m in raw for m in _UNKNOWN_ROUTE):
        return _error(404, "not_found", "no such route")
    try:
        said = json.loads(raw)
        mine = said.get("error") or {}  # djs's own refusal (api_app/auth/refusal.py)
        message = str(said.get("Message") or said.get("message") or mine.get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    status = exc.CODE
    status, headers, body = _error(status, _GATEWAY_CODES.get(status, "error"), message)
    for name in ("x-amzn-RequestId", "WWW-Authenticate", "Retry-After"):
        if exc.headers.get(name):
            headers.append((name, str(exc.headers[name])))
    return status, headers, body


def build_application(settings: Settings, front: FrontSettings) -> ChaliceWSGI:
    app = create_app(Services.connect(settings))
    origins = parse_origins(settings.cors_origins)
    return ChaliceWSGI(app, front.max_body_bytes, origins, front.access_log)


def __getattr__(name: str) -> Any:
    """`application`, built on first use (PEP 562), so that importing this module for
    ChaliceWSGI connects nothing: a WSGI server's getattr builds it once per process."""
    if name != "application":
        raise AttributeError(name)
    app = globals()["application"] = build_application(Settings(), FrontSettings())
    return app
