"""The authorizer cache API Gateway has and chalice.local's LocalGateway has not.

API Gateway keeps an authorizer's answer for a token (`ttl_seconds`) and checks each request
against it; LocalGateway builds the authorizer's event, calls it and matches its policy on
every request: with keys on, that was 10 % of the API's CPU per submission (py-spy --gil).
`djs api` keeps the answer for one token on one route and method, for a few seconds: the
authorizer still decides every first request, every refusal (none is kept), and again once
the answer is old. A key revoked elsewhere is refused within this TTL plus the verifier's
own cache (api_app/auth/verifier.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import chalice.local as chalice_local
from chalice.app import Chalice

ANSWER_TTL_S = 5.0
MAX_ANSWERS = 4096  # tokens x routes; past it the cache starts again empty


class CachingAuthorizer(chalice_local.LocalGatewayAuthorizer):
    def __init__(self, app: Chalice, ttl_s: float = ANSWER_TTL_S) -> None:
        super().__init__(app)
        self.ttl_s = ttl_s
        self._answers: dict[tuple[str, str, str], tuple[dict[str, Any], float]] = {}
        # The route and key of this thread's request, for the access log (api_app/wsgi.py).
        self.seen = threading.local()

    def forget(self) -> None:
        """A new request on this thread: nothing seen yet."""
        self.seen.route = self.seen.key_id = None

    def _saw(self, request: dict[str, Any]) -> None:
        self.seen.key_id = (request.get("authorizer") or {}).get("key_id")

    def authorize(self, raw_path: str, lambda_event: Any, lambda_context: Any) -> Any:
        request = lambda_event["requestContext"]
        self.seen.route = request.get("resourcePath")
        token = lambda_event["headers"].get("authorization")
        if token is None or self.ttl_s <= 0:
            answer = super().authorize(raw_path, lambda_event, lambda_context)
            self._saw(request)
            return answer
        key = (token, request["httpMethod"], request["resourcePath"])
        now = time.monotonic()
        kept = self._answers.get(key)
        if kept is not None and kept[1] > now:
            request["authorizer"] = dict(kept[0])
            self._saw(request)
            return lambda_event, lambda_context
        answer = super().authorize(raw_path, lambda_event, lambda_context)  # raises a refusal
        granted = request.get("authorizer")
        if granted is not None:  # a route with an authorizer, which allowed the request
            if len(self._answers) >= MAX_ANSWERS:
                self._answers.clear()
            self._answers[key] = (dict(granted), now + self.ttl_s)
        self._saw(request)
        return answer
