"""What the live-runner tests share: the registry's rows read straight from Postgres, and
their handlers and jobs (bounded waits and runners on a thread are tests/helpers.py's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.handlers import HandlerRegistry
from common.models import JobSubmission
from common.services import Services
from common.store.runners import live_runners


def rows(services: Services) -> dict[str, dict[str, Any]]:
    """Every row of the registry, live or not, by id."""
    with services.store.connection() as conn:
        return {r["id"]: r for r in conn.execute("SELECT * FROM runners").fetchall()}


def live(services: Services) -> dict[str, dict[str, Any]]:
    """The live rows by id, by the listing's own query."""
    with services.store.connection() as conn:
        return {r["id"]: r for r in live_runners(conn, 1000)}


def live_row(services: Services, runner_id: str, **expected: Any) -> dict[str, Any] | None:
    """The runner's live row once it holds `expected`, else None."""
    row = live(services).get(runner_id)
    if row is None or any(row[k] != v for k, v in expected.items()):
        return None
    return row


def db_now(services: Services) -> Any:
    with services.store.connection() as conn:
        return conn.execute("SELECT now() AS now").fetchone()["now"]  # type: ignore[index]


def submit(services: Services, job_type: str, **fields: Any) -> int:
    return services.manager.enqueue([JobSubmission(type=job_type, **fields)])[0].job.id


class _App:
    """Stands in for a Chalice app's lambda_function decorator in test-only registries."""

    def lambda_function(self, name: str) -> Any:
        return lambda func: func


def handlers(**functions: Callable[[dict[str, Any], Any], Any]) -> HandlerRegistry:
    reg = HandlerRegistry()
    for name, function in functions.items():
        reg.handler(_App(), name)(function)
    return reg
