"""Readiness: Postgres and Redis answer and the schema's migrations are all applied.

GET /ready on the API and on a runner's probe port both answer this. Liveness (GET /health)
asks less: a process whose database lags a deploy's migrations is alive, not ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.errors import DependencyDown
from common.services import Services
from common.store.migrate import pending_migrations

MAX_NAMED = 20  # missing migrations a body names (a blank database lacks them all)


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # postgres, redis, migrations -> "ok" or what is wrong
    missing_migrations: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.checks.values())

    def not_ready(self) -> list[str]:
        return [name for name, state in self.checks.items() if state != "ok"]


def readiness(services: Services) -> Readiness:
    checks: dict[str, str] = {}
    missing: list[str] = []
    try:
        with services.store.connection() as conn:
            missing = pending_migrations(conn)
        checks["postgres"] = "ok"
        checks["migrations"] = "ok" if not missing else f"{len(missing)} not applied"
    except DependencyDown:
        checks["postgres"] = "unavailable"
        checks["migrations"] = "unknown"
    name, ping = services.dispatch_check()  # Redis, or SQS
    try:
        ping()
        checks[name] = "ok"
    except DependencyDown:
        checks[name] = "unavailable"
    return Readiness(checks, missing[:MAX_NAMED])


def answer(found: Readiness) -> tuple[int, dict[str, Any]]:
    """The status and JSON both probes answer: 200 {"status": "ok", "checks"}, or 503 in
    the API's error shape (api_app/errors.py) naming what is not ready."""
    if found.ready:
        return 200, {"status": "ok", "checks": found.checks}
    what = found.not_ready()
    message = f"not ready: {', '.join(what)}"
    if found.missing_migrations:
        message += f" (missing {', '.join(found.missing_migrations)})"
    details = {"checks": found.checks, "missing_migrations": found.missing_migrations}
    return 503, {"error": {"code": "not_ready", "message": message, "details": details}}
