"""Bounded in bytes, both ways: a body over the limit is refused at once without being read
(through the real `djs api`), and no answer grows with what the jobs hold: a page of GET /jobs
stops at a byte budget and its cursor goes on, and one job's history of 20 attempts with the
largest errors stays a few MB. tests/test_http_front.py tests the front's framing and limits
with small bodies; this adds the large ones."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from chalice.test import Client

from common import limits
from common.handlers import HandlerRegistry
from common.models import Backoff, JobSubmission
from common.services import Services
from tests.raw_http import parse
from tests.test_http_front import MIB, Front, assert_error, start_front

PAYLOAD_BYTES = 200_000


def _page(client: Client, path: str) -> tuple[Any, int]:
    response = client.http.get(path)
    assert response.status_code == 200, response.body
    return json.loads(response.body), len(response.body)


def _big_jobs(services: Services, count: int) -> list[int]:
    jobs = [
        JobSubmission(type="echo", queue="big", payload={"n": n, "pad": "é" * (PAYLOAD_BYTES // 2)})
        for n in range(count)
    ]
    return [s.job.id for s in services.manager.enqueue(jobs)]


def test_a_page_stops_at_its_byte_budget_and_the_cursor_skips_nothing(
    client: Client, services: Services
) -> None:
    ids = _big_jobs(services, 24)  # 4.8 MB of payloads
    with services.store.connection() as conn:  # and as much again in results and errors
        conn.execute(
            "UPDATE jobs SET result = payload, last_error = repeat('e', 16384) WHERE id = ANY(%s)",
            (ids[::2],),
        )
    services.settings.list_max_bytes = budget = 1_000_000
    seen: list[int] = []
    cursor = ""
    for _ in range(len(ids) + 1):
        page, size = _page(client, f"/jobs?queue=big&limit=500{cursor}")
        seen += [j["id"] for j in page["jobs"]]
        # A page holds at least one job, but for the last: the one before it may have
        # reached the budget just as the jobs ran out.
        assert page["jobs"] or page["next_cursor"] is None
        assert size < budget + 2 * PAYLOAD_BYTES + 40_000  # the budget, plus the row that hit it
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == sorted(ids, reverse=True)  # each job once, newest first
    services.settings.list_max_bytes = 1  # a job larger than the budget is still shown
    page, _ = _page(client, "/jobs?queue=big&limit=500")
    assert [j["id"] for j in page["jobs"]] == [ids[-1]] and page["next_cursor"] == ids[-1]


def test_the_default_budget_bounds_a_page_of_500(client: Client, services: Services) -> None:
    ids = _big_jobs(services, 40)  # 8 MB
    page, size = _page(client, "/jobs?limit=500")
    assert services.settings.list_max_bytes == 4 * MIB
    assert 4 * MIB <= size < 4 * MIB + 2 * PAYLOAD_BYTES
    assert page["next_cursor"] == page["jobs"][-1]["id"] and len(page["jobs"]) < len(ids)


class _App:
    def lambda_function(self, name: str) -> Any:
        return lambda func: func


def test_twenty_attempts_of_the_largest_errors_stay_bounded(
    client: Client, services: Services
) -> None:
    registry = HandlerRegistry()

    @registry.handler(_App(), "loud")
    def loud(event: Any, context: Any) -> None:
        raise RuntimeError("x" * MIB)  # a 1 MB message, in the traceback too

    job = JobSubmission(type="loud", attempts=20, backoff=Backoff(type="fixed", delay_ms=0))
    [submitted] = services.manager.enqueue([job])
    services.runner(registry, upkeep=[], listen=False, burst=True, poll_interval_s=0.05).run()
    response = client.http.get(f"/jobs/{submitted.job.id}")
    detail = json.loads(response.body)
    assert detail["status"] == "failed" and len(detail["history"]) == 20
    per_attempt = limits.MAX_ERROR_CHARS + limits.MAX_TRACEBACK_CHARS + 1000
    assert len(response.body) < 20 * per_attempt + 20_000  # about 1.7 MB, not 40 MB


# --- through the real front -----------------------------------------------------------------

BODY = 11 * 1000 * 1000  # 11 MB against the 1 MiB default


@pytest.fixture
def api(env: dict[str, str]) -> Iterator[Front]:
    server = start_front(env)  # the defaults of `djs api`: one process, a 1 MiB limit
    yield server
    assert server.stop() == 0, server.output


def _send_big_body(port: int) -> tuple[float, bytes]:
    """Send the headers and the start of an 11 MB body, keep sending the rest beside; return
    how long the answer took from then, and the answer."""
    head = "POST /jobs HTTP/1.1\r\nHost: djs\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {BODY}\r\n\r\n"
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + chunk)
        started = time.monotonic()

        def rest() -> None:
            try:
                for _ in range(BODY // len(chunk)):
                    sock.sendall(chunk)
            except OSError:  # the server answered and closed: the rest is never read
                pass

        sender = threading.Thread(target=rest, daemon=True)
        sender.start()
        received = b""
        sock.settimeout(5)
        while not parse(received) and (data := sock.recv(65536)):
            received += data
        took = time.monotonic() - started
        with contextlib.suppress(OSError):  # the server may have closed it already
            sock.shutdown(socket.SHUT_RDWR)  # ends the sender too
        sender.join(10)
    return took, received


def _rss(front: Front) -> int:
    """The resident memory of the server and its worker processes."""
    parent = psutil.Process(front.process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])


def test_a_job_detail_shows_the_newest_attempts_and_events_and_counts_them_all(
    client: Client, services: Services
) -> None:
    # Admin retries add attempts and events without end; each attempt may hold 150 KiB.
    [job_id] = _big_jobs(services, 1)
    attempts = limits.MAX_HISTORY + 30
    with services.store.connection() as conn:
        conn.execute(
            "INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome,"
            " error_message) SELECT %s, n, 'w', now(), now(), 'failed', repeat('e', 16384)"
            " FROM generate_series(1, %s) n",
            (job_id, attempts),
        )
        conn.execute(  # as after many admin retries: the budget counts from attempt_offset
            "UPDATE jobs SET attempts = %s, attempt_offset = %s WHERE id = %s",
            (attempts, attempts, job_id),
        )
        conn.execute(
            "INSERT INTO job_events (job_id, at, from_status, to_status, cause)"
            " SELECT %s, now(), 'pending', 'active', 'test' FROM generate_series(1, %s)",
            (job_id, limits.MAX_EVENTS * 2),
        )
    detail, _ = _page(client, f"/jobs/{job_id}")
    shown = [a["attempt"] for a in detail["history"]]
    assert shown == list(range(attempts - limits.MAX_HISTORY + 1, attempts + 1))
    assert detail["attempts_total"] == attempts
    assert len(detail["events"]) == limits.MAX_EVENTS
    assert detail["events_total"] == limits.MAX_EVENTS * 2 + 1  # and the insert's own


def test_an_11_mb_body_is_413_at_once_and_costs_no_memory(api: Front) -> None:
    _send_big_body(api.port)  # warm: the first request imports what answers
    before = _rss(api)
    timings = []
    for _ in range(5):
        took, raw = _send_big_body(api.port)
        [reply] = parse(raw)
        assert_error(reply, 413, "payload_too_large")
        timings.append(took)
    grown = _rss(api) - before
    # The best of five: on a busy 2-core machine one try may wait for a CPU; the server
    # itself answers from the headers alone, in about a millisecond.
    print(f"413 after {[round(t * 1000, 1) for t in timings]} ms; grew {grown / MIB:.2f} MiB")
    assert min(timings) < 0.1 and max(timings) < 2, timings
    assert grown < 10 * MIB, f"the server grew by {grown / MIB:.1f} MiB over five 11 MB bodies"
