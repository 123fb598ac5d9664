"""Dispatch after commit: jobs enqueued inside a caller's transaction send a NOTIFY, which
Postgres delivers only if that transaction commits. Runners LISTEN and push the ids to Redis."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime

import psycopg

from common.backoff import ReconnectBackoff
from common.errors import DependencyDown
from common.redisqueue import Ready, RedisQueue

log = logging.getLogger("djs.notify")

CHANNEL = "djs_enqueued"


def notify_payloads(ready: list[Ready]) -> list[str]:
    """NOTIFY payloads (under Postgres's 8,000-byte limit): [[id, queue, priority, due_ms]...]."""
    rows = [
        [r.id, r.queue, r.priority, int(r.due.timestamp() * 1000) if r.due else 0] for r in ready
    ]
    return [json.dumps(rows[i : i + 100]) for i in range(0, len(rows), 100)]


def parse_payload(payload: str) -> list[Ready]:
    return [
        Ready(
            int(job_id),
            str(queue),
            int(priority),
            datetime.fromtimestamp(due_ms / 1000, UTC) if due_ms else None,
        )
        for job_id, queue, priority, due_ms in json.loads(payload)
    ]


class EnqueueListener:
    """LISTENs on its own connection and pushes each committed enqueue to Redis."""

    def __init__(self, database_url: str, redis_queue: RedisQueue) -> None:
        self.database_url = database_url
        self.queue = redis_queue

    def run(self, stop: threading.Event) -> None:
        backoff = ReconnectBackoff()
        while not stop.is_set():
            try:
                with psycopg.connect(self.database_url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff.reset()
                    self._listen(conn, stop)
            except (psycopg.OperationalError, DependencyDown) as exc:
                log.warning("enqueue listener: %s; reconnecting", exc)
                stop.wait(backoff.next_delay())

    def _listen(self, conn: psycopg.Connection[object], stop: threading.Event) -> None:
        while not stop.is_set():
            for note in conn.notifies(timeout=0.5, stop_after=100):
                self.queue.push(parse_payload(note.payload))
