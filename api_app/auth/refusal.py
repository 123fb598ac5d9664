"""The 401 answer, as API Gateway and chalice.local each need it raised.

Behind API Gateway an authorizer refuses by raising an exception whose message is
"Unauthorized" (API Gateway then answers 401; its UNAUTHORIZED gateway response is where a
deployment adds `WWW-Authenticate`). chalice.local is not deployed to Lambda; where it is
importable (`chalice local`, `chalice.test.Client`, `djs api`), the refusal is its
NotAuthorizedError carrying djs's JSON error body and `WWW-Authenticate: Bearer`.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from api_app.errors import RETRY_AFTER_S, error_body

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="djs"', "Content-Type": "application/json"}

try:
    from chalice.local import (
        ARNMatcher,
        ForbiddenError,
        LocalGatewayAuthorizer,
        LocalGatewayException,
        NotAuthorizedError,
    )

    _LOCAL = True
except ImportError:  # on Lambda
    _LOCAL = False


def _body(reason: str) -> bytes:
    return json.dumps(error_body("unauthorized", reason)).encode()


if _LOCAL:

    class Unauthorized(NotAuthorizedError):
        """401: no key, or one that is not valid."""

        def __init__(self, reason: str) -> None:
            super().__init__(dict(CHALLENGE), _body(reason))

    class Unavailable(LocalGatewayException):
        """503: the key is not cached and Postgres does not answer."""

        CODE = 503

        def __init__(self) -> None:
            body = error_body(
                "dependency_unavailable",
                "postgres unavailable: keys cannot be checked",
                {"dependency": "postgres"},
            )
            headers = {"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER_S)}
            super().__init__(headers, json.dumps(body).encode())

else:  # pragma: no cover - Lambda

    class Unauthorized(Exception):  # type: ignore[no-redef]
        def __init__(self, reason: str) -> None:
            super().__init__("Unauthorized")  # the word API Gateway turns into a 401

    class Unavailable(Exception):  # type: ignore[no-redef]
        """API Gateway answers 500 for an authorizer that fails otherwise."""


def refusals_in_our_shape() -> None:
    """chalice.local answers two refusals itself: a request without an Authorization header
    (before the authorizer runs: {"message": "Unauthorized"}, no challenge) and a role the
    policy does not allow ({"Message": "User is not authorized..."}). Both get djs's error
    shape, and the 401 its challenge. (`djs api` maps them too: api_app/wsgi.py.)"""
    if not _LOCAL or getattr(LocalGatewayAuthorizer, "_djs_shaped", False):
        return
    original = LocalGatewayAuthorizer.authorize

    @functools.wraps(original)
    def authorize(self: Any, raw_path: str, event: Any, context: Any) -> Any:
        try:
            return original(self, raw_path, event, context)
        except Unauthorized:
            raise
        except NotAuthorizedError as exc:
            raise Unauthorized("send Authorization: Bearer <key>") from exc
        except ForbiddenError as exc:
            if b"not authorized" not in (exc.body or b""):
                raise  # an unknown route: chalice.local's 403, mapped to 404 by the fronts
            body = error_body("forbidden", "this key's role may not call this route")
            raise ForbiddenError(
                {**exc.headers, "Content-Type": "application/json"}, json.dumps(body).encode()
            ) from exc

    LocalGatewayAuthorizer.authorize = authorize  # type: ignore[method-assign,assignment]
    LocalGatewayAuthorizer._djs_shaped = True  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4096)
def _resource_pattern(resource: str) -> re.Pattern[str]:
    # chalice.local's own translation of an ARN glob (* any run, ? one character).
    escaped = re.escape(resource).replace(r"\?", ".").replace(r"\*", ".*?")
    return re.compile(f"^{escaped}$")


def match_policies_fast() -> None:
    """chalice.local matches a request against each resource of the policy by escaping the
    resource anew every time (re.escape: 4 us per resource, 25 us for a submitter's GET
    /me). Our policies are a handful of constant strings: each is translated once."""
    if not _LOCAL or getattr(ARNMatcher, "_djs_cached", False):
        return

    def resource_match(self: Any, resource: str) -> bool:
        return _resource_pattern(resource).match(self._arn) is not None

    ARNMatcher._resource_match = resource_match  # type: ignore[method-assign]
    ARNMatcher._djs_cached = True  # type: ignore[attr-defined]
