"""Who an admin verb is audited as: the caller the authorizer verified (api_app/auth)."""

from __future__ import annotations

from typing import Any

from api_app.auth.identity import caller
from common.audit import Actor


def actor(request: Any) -> Actor:
    """The request's key as an Actor. Every route that changes jobs or settings requires a
    key (api_app/auth/roles.py); a request without one is recorded as `anonymous`."""
    context = request.context or {}
    found = context.get("authorizer")
    if not found or "key_id" not in found:
        return Actor(None, "anonymous", "none", context.get("requestId") or _invocation_id(request))
    who = caller(request)
    return Actor(who.key_id, who.name, who.role, who.request_id or _invocation_id(request))


def _invocation_id(request: Any) -> str | None:
    """API Gateway's request id is in the context; `chalice local` and `djs api` give none,
    but each request has its own Lambda context id, which their logs name."""
    context = getattr(request, "lambda_context", None)
    return getattr(context, "aws_request_id", None)
