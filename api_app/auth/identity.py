"""Who is calling: the identity the authorizer attached to a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api_app.auth.roles import SEES_EVERYTHING
from common.apikeys import at_least


@dataclass(frozen=True)
class Caller:
    """The key behind a request, as the custom authorizer verified it."""

    key_id: int
    name: str
    role: str  # "submitter" | "viewer" | "operator" | "admin" | "metrics"
    request_id: str  # the API Gateway request id of this request
    rate_per_s: float | None  # the key's override, None = the role's default

    def at_least(self, role: str) -> bool:
        return at_least(self.role, role)


def caller(request: Any) -> Caller:
    """The caller of a request, from request.context["authorizer"] (API Gateway passes the
    authorizer's context values as strings; chalice local passes them as they were given)."""
    context = request.context or {}
    found = context.get("authorizer") or {}
    rate = found.get("rate_per_s")
    return Caller(
        key_id=int(found["key_id"]),
        name=str(found["name"]),
        role=str(found["role"]),
        request_id=str(context.get("requestId", "")),
        rate_per_s=float(rate) if rate not in (None, "") else None,
    )


def owner_scope(found: Caller) -> int | None:
    """The owner a caller's job reads are limited to: its own key for a submitter, None
    (every job) for a viewer and above."""
    return None if found.at_least(SEES_EVERYTHING) else found.key_id
