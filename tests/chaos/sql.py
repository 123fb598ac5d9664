"""The SQL checks: what the scenarios read from Postgres, the system of record."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from tests.chaos.core import TERMINAL


@contextlib.contextmanager
def db(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        yield conn


def scalar(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None


def status_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT status::text, count(*) FROM jobs GROUP BY 1").fetchall()
    return {status: int(n) for status, n in rows}


def not_terminal(conn: psycopg.Connection[Any], ids: list[int] | None = None) -> int:
    if ids is None:
        return int(
            scalar(conn, "SELECT count(*) FROM jobs WHERE status <> ALL(%s)", list(TERMINAL))
        )
    query = "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status <> ALL(%s)"
    return int(scalar(conn, query, ids, list(TERMINAL)))


def settle(
    conn: psycopg.Connection[Any], ids: list[int], since: float, budget_s: float
) -> tuple[float, int]:
    """Wait until these jobs are terminal or `since + budget_s` passes; return the seconds
    from `since` and how many are still not terminal. It reports rather than fails: the
    scenario asserts on both and records them."""
    deadline = since + budget_s
    while not_terminal(conn, ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return time.monotonic() - since, not_terminal(conn, ids)


def settle_accepted(
    conn: psycopg.Connection[Any], accepted: list[int], since: float, budget_s: float
) -> tuple[float, int]:
    """settle() the jobs answered 201; return the seconds from `since` and how many are
    lost: missing from Postgres, or still not terminal at the deadline."""
    terminal_s, left = settle(conn, accepted, since, budget_s)
    stored = scalar(conn, "SELECT count(*) FROM jobs WHERE id = ANY(%s)", accepted)
    return terminal_s, len(accepted) - stored + left


# Every recorded move into completed, as GET /jobs/{id} shows the events: a runner's is its
# attempt's row (to_status), any other an event row (migration 013).
MOVES_INTO_COMPLETED = (
    "(SELECT job_id FROM job_events WHERE to_status = 'completed'"
    " UNION ALL SELECT job_id FROM job_attempts WHERE to_status = 'completed')"
)


def completed_twice(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Jobs recorded completed more than once: by attempt rows and by state changes."""
    by_attempts = scalar(
        conn,
        "SELECT count(*) FROM (SELECT job_id FROM job_attempts WHERE outcome = 'completed'"
        " GROUP BY job_id HAVING count(*) > 1) t",
    )
    by_events = scalar(
        conn,
        f"SELECT count(*) FROM (SELECT job_id FROM {MOVES_INTO_COMPLETED} m"
        " GROUP BY job_id HAVING count(*) > 1) t",
    )
    return {"by_attempts": int(by_attempts), "by_events": int(by_events)}


def outcome_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT outcome, count(*) FROM job_attempts GROUP BY 1").fetchall()
    return {outcome: int(n) for outcome, n in rows}
