"""The live runner registry in Postgres (migration 009), on a connection the caller gives:
runners beat into it (common/runner/registry.py), the API and the CLI list it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.store.sqlfile import load_queries

Q = load_queries("runners.sql")
Row = dict[str, Any]


@dataclass(frozen=True)
class RunnerBeat:
    """What a runner says of itself at each beat."""

    id: str
    host: str
    pid: int
    queues: list[str]  # empty: every queue
    concurrency: int
    in_hand: int
    beat_interval_s: float
    version: str
    started_at: datetime | None  # from its first beat; None: this is its first


def beat_runner(conn: psycopg.Connection[Any], beat: RunnerBeat) -> datetime:
    """Register or beat, one statement; return the runner's started_at (database clock)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(Q["beat_runner"], asdict(beat)).fetchone()
    assert row is not None  # an upsert always returns its row
    started: datetime = row["started_at"]
    return started


def remove_runner(conn: psycopg.Connection[Any], runner_id: str) -> bool:
    """A clean stop; False if the row was gone already."""
    return conn.execute(Q["remove_runner"], {"id": runner_id}).rowcount > 0


def prune_runners(conn: psycopg.Connection[Any], limit: int) -> int:
    """Delete up to `limit` rows of runners dead for over an hour; return how many."""
    return len(conn.execute(Q["prune_runners"], {"limit": limit}).fetchall())


def live_runners(conn: psycopg.Connection[Any], limit: int) -> list[Row]:
    """Live runners (last beat within two of their intervals), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(Q["live_runners"], {"limit": limit}).fetchall()


def live_runners_per_queue(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, int]]:
    """(live runners of every queue, {queue: live runners that name it}), in one query."""
    every, named = 0, {}
    with conn.cursor(row_factory=dict_row) as cur:
        for row in cur.execute(Q["live_runners_per_queue"]).fetchall():
            if row["queue"] is None:
                every = row["runners"]
            else:
                named[row["queue"]] = row["runners"]
    return every, named
