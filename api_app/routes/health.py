"""GET /health: 200 when Postgres and the dispatcher (Redis, or SQS) answer, 503 naming the one
that does not."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.contract.bodies import Health
from api_app.contract.meta import documented
from api_app.errors import RETRY_AFTER_S, error_body, json_response
from common.errors import DependencyDown
from common.services import Services

# For GET /openapi.json (api_app/contract).
_HEALTH = documented(
    "200 when Postgres and Redis answer; 503 names the one that does not", {200: Health}
)


def health_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)

    @bp.route("/health", methods=["GET"])
    @_HEALTH
    def health() -> Any:
        checks: dict[str, str] = {}
        for name, ping in (("postgres", services.store.ping), services.dispatch_check()):
            try:
                ping()
                checks[name] = "ok"
            except DependencyDown:
                checks[name] = "unavailable"
        down = [name for name, state in checks.items() if state != "ok"]
        if not down:
            return json_response({"status": "ok", "checks": checks})
        body = error_body(
            "dependency_unavailable", f"{' and '.join(down)} unavailable", {"checks": checks}
        )
        return json_response(body, 503, {"Retry-After": str(RETRY_AFTER_S)})

    return bp
