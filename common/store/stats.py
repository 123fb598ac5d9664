"""GET /stats: per queue, completed and failed per minute over the last hour, wait and run
percentiles over the last five minutes, and the oldest waiting job's age (stats.sql)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from common import limits
from common.store import counts
from common.store.overview import known_queues, oldest_waiting, queue_settings
from common.store.pool import Row
from common.store.sqlfile import load_queries

STATS = load_queries("stats.sql")
_KEYS = ("p50", "p95", "p99")


def _queues(conn: psycopg.Connection[Row], queue: str | None) -> list[str]:
    if queue is not None:
        return [queue]
    return known_queues(counts.queue_counts(conn, None), queue_settings(conn))


def _percentiles(latency: Row | None, kind: str) -> dict[str, Any]:
    samples = int(latency[f"{kind}_samples"]) if latency else 0
    shown = latency[kind] if latency and samples else [None, None, None]
    return {**dict(zip(_KEYS, shown, strict=True)), "samples": samples}


def gather(conn: psycopg.Connection[Row], queue: str | None) -> dict[str, Any]:
    now = conn.execute("SELECT now() AS now").fetchone()["now"]  # type: ignore[index]
    current = now.astimezone(UTC).replace(second=0, microsecond=0)
    minutes = [current - timedelta(minutes=i) for i in reversed(range(limits.STATS_MINUTES))]
    names = _queues(conn, queue)
    params = {"since": minutes[0], "queue": queue, "queues": names}
    outcomes: dict[tuple[str, datetime], Row] = {
        (r["queue"], r["minute"]): r
        for r in conn.execute(STATS["outcomes_per_minute"], params).fetchall()
    }
    sampled = {"sample": limits.STATS_SAMPLE, "window_s": limits.STATS_WINDOW_S, **params}
    latencies = {r["queue"]: r for r in conn.execute(STATS["attempt_latencies"], sampled)}
    oldest = oldest_waiting(conn, names)
    for name in set(latencies) | {q for q, _ in outcomes}:
        if queue is None and name not in names:  # jobs finished and removed since
            names.append(name)
    return {
        "generated_at": now,
        "minutes": limits.STATS_MINUTES,
        "latency_window_s": limits.STATS_WINDOW_S,
        "queues": [
            _queue(n, minutes, outcomes, latencies.get(n), oldest.get(n)) for n in sorted(names)
        ],
    }


def _queue(
    name: str,
    minutes: list[datetime],
    outcomes: dict[tuple[str, datetime], Row],
    latency: Row | None,
    oldest: float | None,
) -> dict[str, Any]:
    per_minute = []
    for minute in minutes:
        row = outcomes.get((name, minute))
        per_minute.append(
            {
                "minute": minute,
                "completed": int(row["completed"]) if row else 0,
                "failed": int(row["failed"]) if row else 0,
            }
        )
    return {
        "name": name,
        "per_minute": per_minute,
        "wait_ms": _percentiles(latency, "wait"),
        "run_ms": _percentiles(latency, "run"),
        "oldest_waiting_s": oldest,
    }
