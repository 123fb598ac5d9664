"""CORS for a dashboard hosted on another origin: off unless DJS_CORS_ORIGINS lists origins.

With no origins (the default) nothing here is registered: no CORS header is ever sent and a
browser allows only same-origin calls. With origins, two parts:

- an `OPTIONS` route of our own on every path, without an authorizer (a preflight never
  carries the key), that answers the preflight: 204 with the path's methods, the request
  headers a client may send, and how long the answer may be cached;
- an HTTP middleware that adds `Access-Control-Allow-Origin: <that exact origin>` to every
  answer to an allowed origin, and `Vary: Origin` to every answer.

A disallowed origin gets no CORS header at all. Credentials are never allowed: keys travel in
`Authorization`, no cookie is ever read, so a cross-site request cannot act as a user.

Why not Chalice's `cors=` route option: it takes one origin, sends it to every origin, and
its preflight answer is made by `chalice local` (LocalGateway's `_autogen_options_headers`)
and by API Gateway (a mock integration) but not by the code itself. Routes of our own run the
same code under `djs api`, `chalice local` and API Gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from chalice.app import Chalice, Response
from pydantic import BaseModel, ConfigDict

from api_app.contract.meta import documented
from api_app.errors import ANY_TYPE

ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
# Answer headers a browser script may read besides the simple ones.
EXPOSE_HEADERS = "Location, Retry-After"
# How long a browser may cache a preflight answer (Chromium caps it at 2 hours).
MAX_AGE_S = 600


class Preflight(BaseModel):
    """A preflight answer has no body; its headers say what the origin may send."""

    model_config = ConfigDict(extra="forbid")


def parse_origins(text: str) -> frozenset[str]:
    """The origins of DJS_CORS_ORIGINS; ValueError for `*` or anything but scheme://host[:port]."""
    origins = set()
    for raw in text.split(","):
        origin = raw.strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if origin == "*" or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"DJS_CORS_ORIGINS: {raw.strip()!r} is not an origin like https://host"
            )
        if parts.path or parts.query or parts.fragment or parts.username:
            raise ValueError(
                f"DJS_CORS_ORIGINS: {raw.strip()!r} has more than scheme://host[:port]"
            )
        origins.add(origin.lower())  # browsers send the origin in lower case
    return frozenset(origins)


def add_preflights(app: Chalice, origins: frozenset[str]) -> None:
    """An OPTIONS route on every path (none without origins). Call it after every other route
    is registered and after the authorizer is installed: a preflight carries no key."""
    if not origins:
        return
    for number, (path, methods) in enumerate(sorted(app.routes.items())):
        allowed = ", ".join(sorted({*methods, "OPTIONS"}))
        view = _preflight_view(app, origins, allowed)
        view.__name__ = f"cors_preflight_{number}"
        app.route(path, methods=["OPTIONS"], content_types=ANY_TYPE, name=view.__name__)(view)


def _preflight_view(app: Chalice, origins: frozenset[str], allowed: str) -> Callable[..., Any]:
    @documented(
        "CORS preflight (only with DJS_CORS_ORIGINS)", {204: Preflight}, uses_dependencies=False
    )
    def preflight(**_path: str) -> Response:
        request = app.current_request
        headers: dict[str, str | list[str]] = {"Allow": allowed}
        asked = request.headers.get("access-control-request-method") if request else None
        if asked and request and request.headers.get("origin", "").lower() in origins:
            headers["Access-Control-Allow-Methods"] = allowed
            headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = str(MAX_AGE_S)
        return Response(body="", status_code=204, headers=headers)

    return preflight


def cors_headers(origins: frozenset[str]) -> Callable[[Any, Callable[[Any], Response]], Response]:
    """The HTTP middleware that adds the CORS headers to every answer to an allowed origin."""

    def middleware(request: Any, get_response: Callable[[Any], Response]) -> Response:
        response = get_response(request)
        headers = response.headers
        # The answer depends on the Origin header, whatever it is: caches must key on it.
        vary = headers.get("Vary")
        headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        headers.update(allowed_origin_headers(request.headers.get("origin"), origins))
        return response

    return middleware


def allowed_origin_headers(origin: str | None, origins: frozenset[str]) -> dict[str, str]:
    """The CORS headers of an answer to `origin`: none unless it is one of `origins`."""
    if not origin or origin.lower() not in origins:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSE_HEADERS}
