"""The alert loop: POSTs to a queue's alert URL when jobs failed, when the schedule lag passes
the queue's threshold, or when the queue has due waiting jobs and no live runner serves it.

Every runner runs it next to its janitor, and `djs api` runs it on a thread of its own, so
"no runners" is told even when no runner is up. Each send is claimed first by a conditional
UPDATE in Postgres (common/store/sql/alerts.sql, claim_send): one POST per (queue, kind) per
window across every process. A claim is spent even when the POST then fails: a receiver that
is down is not hammered by every process each turn.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from typing import Any

from common import limits, netguard
from common.store import Store
from common.store import alerts as q
from common.upkeep.throttle import Every

log = logging.getLogger("djs.alerts")

Post = Callable[[str, dict[str, Any]], int]


def post_alert(url: str, body: dict[str, Any], allow: list[str]) -> int:
    """POST `body` as JSON to `url`, connected to its vetted address (netguard), with a
    bounded timeout, no redirects followed and at most a few KB of the answer read; return
    the status. Raises on a refused address or a network error."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"alert url must be http(s) with a host: {url!r}")
    data = json.dumps(body, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "djs-alerts"}
    answer = netguard.post(
        parts,
        data,
        headers,
        allow,
        limits.ALERT_TIMEOUT_S,
        limits.ALERT_READ_BYTES,
        setting="DJS_ALERT_ALLOW",
    )
    return answer.status


class AlertLoop:
    """One turn every `interval_s` over every queue with an alert hook; each queue and each
    kind is caught on its own, so one bad URL or a hanging receiver never stops the rest."""

    def __init__(
        self, store: Store, allow: list[str], interval_s: float = 1.0, post: Post | None = None
    ) -> None:
        self.store = store
        self.allow = allow
        self._post: Post = post or (lambda url, body: post_alert(url, body, self.allow))
        self._every = Every(interval_s, self.run_once, log)

    def maybe_run(self) -> int:
        return self._every.maybe_run()

    def run_once(self) -> int:
        """Return how many alerts this process sent."""
        with self.store.connection() as conn:
            hooks = q.list_alerts(conn)
        sent = 0
        for hook in hooks:
            for check in (self._failed, self._waiting):
                try:
                    sent += check(hook)
                except Exception:  # one queue's trouble is logged; the others go on
                    log.exception("alert for queue %s failed", hook["queue"])
        return sent

    def _send(self, hook: dict[str, Any], kind: str, at: datetime, details: dict[str, Any]) -> int:
        body = {"queue": hook["queue"], "kind": kind, "at": at.isoformat(), "details": details}
        try:
            status = self._post(hook["url"], body)
        except Exception as exc:  # refused address, timeout, connection refused: told, not fatal
            log.warning("alert %s for queue %s not delivered: %s", kind, hook["queue"], exc)
            return 0
        if status >= 300:
            log.warning("alert %s for queue %s answered %d", kind, hook["queue"], status)
        return 1

    def _failed(self, hook: dict[str, Any]) -> int:
        queue = hook["queue"]
        with self.store.connection() as conn:
            seen = q.failed_mark(conn, queue)
            if seen is None or seen[2] == 0:
                return 0
            mark, settled, _ = seen
            claim = q.claim_send(conn, queue, "failed", mark, settled)
            if claim is None:
                return 0
            count, jobs = q.failed_between(conn, queue, mark, claim["new_mark"])
        details = {"count": count, "jobs": jobs, "since": mark.isoformat()}
        return self._send(hook, "failed", claim["at"], details)

    def _waiting(self, hook: dict[str, Any]) -> int:
        queue = hook["queue"]
        with self.store.connection() as conn:
            state = q.waiting_state(conn, queue)
        if not state["waiting"]:
            return 0
        sent = 0
        oldest = float(state["oldest_s"] or 0.0)
        threshold = hook["lag_threshold_s"]
        if threshold is not None and oldest > threshold:
            details = {
                "oldest_waiting_s": oldest,
                "threshold_s": threshold,
                "waiting": state["waiting"],
            }
            sent += self._claimed_send(hook, "schedule_lag", details)
        if state["runners"] == 0:
            details = {"waiting": state["waiting"], "oldest_waiting_s": oldest}
            sent += self._claimed_send(hook, "no_runners", details)
        return sent

    def _claimed_send(self, hook: dict[str, Any], kind: str, details: dict[str, Any]) -> int:
        with self.store.connection() as conn:
            claim = q.claim_send(conn, hook["queue"], kind)
        if claim is None:
            return 0
        return self._send(hook, kind, claim["at"], details)


def run_in_thread(loop: AlertLoop, stop: threading.Event, tick_s: float = 0.2) -> threading.Thread:
    """The loop on a daemon thread until `stop` (the `djs api` process, which has no watcher)."""

    def run() -> None:
        while not stop.is_set():
            loop.maybe_run()  # Every catches and logs whatever a turn raises
            stop.wait(tick_s)

    thread = threading.Thread(target=run, name="djs-alerts", daemon=True)
    thread.start()
    return thread
