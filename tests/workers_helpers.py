"""What the live-runner tests share: bounded waits, the registry's rows read straight from
Postgres, and runners on a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from common.handlers import HandlerRegistry
from common.models import JobSubmission
from common.runner import Runner
from common.services import Services
from common.store.runners import live_runners

WAIT_S = 60.0  # upper bounds only: a busy machine may be slow, never wrong


def wait_until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


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


@contextmanager
def running(runner: Runner) -> Iterator[Runner]:
    """The runner on a thread until the block ends; then stopped and joined."""
    thread = threading.Thread(target=runner.run, name="test-runner", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the runner did not stop"
