"""GET /queues's facts, read on one pooled connection: each queue's exact counts, its
settings, the live runners serving it and its oldest waiting job's age."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from common.store import counts
from common.store.pool import Row
from common.store.runners import live_runners_per_queue
from common.store.sqlfile import QUERIES as Q
from common.store.sqlfile import load_queries

OVERVIEW = load_queries("overview.sql")


@dataclass(frozen=True)
class QueueOverview:
    names: list[str]  # every queue with jobs or settings, sorted
    counts: dict[str, dict[str, int]]
    settings: dict[str, Row]
    runners_of_every_queue: int
    runners_named: dict[str, int]
    oldest_waiting_s: dict[str, float | None]

    def runners(self, queue: str) -> int:
        """Live runners serving `queue`: those of every queue and those that name it."""
        return self.runners_of_every_queue + self.runners_named.get(queue, 0)


def queue_settings(conn: psycopg.Connection[Row]) -> dict[str, Row]:
    return {r["name"]: r for r in conn.execute(Q["queue_settings"]).fetchall()}


def known_queues(found: dict[str, Any], settings: dict[str, Row]) -> list[str]:
    """The queues with jobs (in the counts) or with settings."""
    return sorted(set(found) | set(settings))


def oldest_waiting(conn: psycopg.Connection[Row], names: list[str]) -> dict[str, float | None]:
    """Seconds since each queue's oldest pending job was due (None: nothing pending)."""
    rows = conn.execute(OVERVIEW["oldest_waiting"], {"queues": names}).fetchall()
    return {
        r["queue"]: None if r["oldest_waiting_s"] is None else float(r["oldest_waiting_s"])
        for r in rows
    }


def overview(conn: psycopg.Connection[Row], owner_key_id: int | None) -> QueueOverview:
    """With an owner (a submitter), its own counts and no ages: the age of another key's
    job is not its to see."""
    found = counts.queue_counts(conn, owner_key_id)
    settings = queue_settings(conn)
    names = known_queues(found, settings)
    every, named = live_runners_per_queue(conn)
    oldest = oldest_waiting(conn, names) if owner_key_id is None else {}
    return QueueOverview(names, found, settings, every, named, oldest)
