"""Dispatch after commit: jobs enqueued inside a caller's transaction send a NOTIFY, which
Postgres delivers only if that transaction commits. Runners LISTEN and push the ids."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from common.reconnect import ReconnectBackoff
from common.records import Ready, from_due_ms

log = logging.getLogger("djs.notify")

CHANNEL = "djs_enqueued"
# Postgres refuses a NOTIFY payload over 8,000 bytes: 100 jobs stay well under it.
_PER_NOTIFY = 100


def notify_enqueued(conn: psycopg.Connection[Any], ready: Sequence[Ready]) -> None:
    """Announce these jobs on `conn`, delivered when (and if) its transaction commits."""
    rows = [[r.id, r.queue, r.priority, r.due_ms] for r in ready]
    for i in range(0, len(rows), _PER_NOTIFY):
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(rows[i : i + _PER_NOTIFY])))


def parse_payload(payload: str) -> list[Ready]:
    return [
        Ready(int(job_id), str(queue), int(priority), from_due_ms(due) if due else None)
        for job_id, queue, priority, due in json.loads(payload)
    ]


def listen(database_url: str, stop: threading.Event) -> Iterator[list[Ready]]:
    """The jobs of each committed NOTIFY until `stop` is set, reconnecting with backoff."""
    backoff = ReconnectBackoff()
    while not stop.is_set():
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                backoff.reset()
                while not stop.is_set():
                    for note in conn.notifies(timeout=0.5, stop_after=100):
                        yield parse_payload(note.payload)
        except psycopg.OperationalError as exc:
            log.warning("enqueue listener: %s; reconnecting", exc)
            stop.wait(backoff.next_delay())
