"""HTTP middleware: every request made with an API key spends a token of that key's bucket.

Past the bucket: 429 `rate_limited` with an integer Retry-After. A request without a key
(/health, /openapi.json, a CORS preflight) is not limited. If Redis does not answer, an
`admin` key passes (so an operator can still act during an outage) and every other key gets
503 `dependency_unavailable`, as for any other dependency that is down: the client is told to
come back, not that it sent too much (common/ratelimit/limiter.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import Response

from api_app.auth.identity import Caller, caller
from api_app.errors import error_body, error_response, json_response
from common.errors import DependencyDown
from common.ratelimit import RateLimiter
from common.settings import Settings

log = logging.getLogger("djs.api")

Middleware = Callable[[Any, Callable[[Any], Response]], Response]

# The role whose requests pass when Redis is down.
FAILS_OPEN = frozenset({"admin"})


def role_rates(settings: Settings) -> dict[str, float]:
    return {
        "submitter": settings.rate_submitter,
        "viewer": settings.rate_viewer,
        "operator": settings.rate_operator,
        "admin": settings.rate_admin,
    }


def rate_of(who: Caller, rates: Mapping[str, float]) -> float:
    """The key's own rate if it has one, else its role's (an unknown role: the lowest)."""
    if who.rate_per_s is not None and who.rate_per_s > 0:
        return who.rate_per_s
    return rates.get(who.role, min(rates.values()))


def too_many(who: Caller, rate: float, wait_s: float) -> Response:
    retry_after = max(1, math.ceil(wait_s))
    body = error_body(
        "rate_limited",
        f"the key {who.name!r} is over its rate of {rate:g} requests a second",
        {"rate_per_s": rate, "retry_after_s": retry_after},
    )
    return json_response(body, 429, {"Retry-After": str(retry_after)})


def rate_limits(limiter: RateLimiter, rates: Mapping[str, float]) -> Middleware:
    """The middleware, for `app.register_middleware(..., "http")`."""

    def middleware(request: Any, get_response: Callable[[Any], Response]) -> Response:
        found = (request.context or {}).get("authorizer")
        if not found or "key_id" not in found:
            return get_response(request)
        who = caller(request)
        rate = rate_of(who, rates)
        try:
            wait_s = limiter.admit(who.key_id, rate)
        except DependencyDown as exc:
            if who.role in FAILS_OPEN:
                log.warning("redis is down: key %r passes unlimited (%s)", who.name, who.role)
                return get_response(request)
            return error_response(exc)
        if wait_s > 0:
            return too_many(who, rate, wait_s)
        return get_response(request)

    return middleware
