"""GET /stats: completed and failed per minute over the hour (the same before and after a
fold), wait and run percentiles over the latest attempts, the oldest waiting job's age."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from chalice.test import Client

from common.models import JobSubmission, ListQuery
from common.records import Completion, Failure
from common.services import Services


def _run(services: Services, queue: str, completed: int, failed: int) -> None:
    stored = services.manager.enqueue(
        [JobSubmission(type="echo", queue=queue, attempts=1) for _ in range(completed + failed)]
    )
    jobs = services.store.claim([s.job.id for s in stored], "stats-test", 30)
    done = [Completion(j.id, j.lease_token, None) for j in jobs[:completed]]
    fail = [
        Failure(j.id, j.lease_token, "E", "x", "tb", None, "exhausted") for j in jobs[completed:]
    ]
    services.manager.record(done, fail)


def _stats(client: Client, query: str = "") -> dict[str, Any]:
    response = client.http.get(f"/stats{query}")
    assert response.status_code == 200, response.body
    return {q["name"]: q for q in response.json_body["queues"]}


def test_outcomes_per_minute_are_zero_filled_and_fold_safe(
    client: Client, services: Services
) -> None:
    _run(services, "mail", completed=3, failed=2)
    answer = client.http.get("/stats").json_body
    assert (answer["minutes"], answer["latency_window_s"]) == (60, 300)
    minutes = answer["queues"][0]["per_minute"]
    starts = [datetime.fromisoformat(m["minute"]) for m in minutes]
    assert len(minutes) == 60 and starts == sorted(starts)
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(starts))
    generated = datetime.fromisoformat(answer["generated_at"])
    assert starts[-1] <= generated < starts[-1] + timedelta(minutes=1)
    # The jobs finished in this minute or, at a minute's turn, the one before.
    assert sum(m["completed"] for m in minutes[-2:]) == 3
    assert sum(m["failed"] for m in minutes[-2:]) == 2
    assert sum(m["completed"] + m["failed"] for m in minutes[:-2]) == 0
    services.store.fold_counts()
    folded = _stats(client)["mail"]["per_minute"]
    assert sum(m["completed"] for m in folded) == 3 and sum(m["failed"] for m in folded) == 2
    services.manager.remove_one(services.store.list_jobs(ListQuery(queue="mail"))[0].id)
    kept = _stats(client)["mail"]["per_minute"]  # an outcome stays counted after a remove
    assert sum(m["completed"] + m["failed"] for m in kept) == 5


def test_latency_percentiles_and_oldest_waiting(client: Client, services: Services) -> None:
    _run(services, "busy", completed=20, failed=0)
    services.manager.enqueue([JobSubmission(type="echo", queue="idle")])
    with services.store.connection() as conn:  # known waits and runs: 0 to 1.9 s
        conn.execute(
            "UPDATE job_attempts SET waited_ms = (id % 20) * 100,"
            " finished_at = started_at + (id % 20) * interval '100 ms' WHERE queue = 'busy'"
        )
    stats = _stats(client)
    busy, idle = stats["busy"], stats["idle"]
    for figures in (busy["wait_ms"], busy["run_ms"]):
        assert figures["samples"] == 20
        assert 800 <= figures["p50"] <= 1100 and figures["p50"] <= figures["p95"] <= figures["p99"]
        assert figures["p99"] <= 1900
    assert busy["oldest_waiting_s"] is None  # nothing pending there
    assert idle["wait_ms"] == {"p50": None, "p95": None, "p99": None, "samples": 0}
    assert idle["oldest_waiting_s"] is not None and idle["oldest_waiting_s"] >= 0
    assert set(_stats(client, "?queue=idle")) == {"idle"}


def test_stats_query_is_validated(client: Client) -> None:
    for query in ("?queue=no%20spaces", "?other=1"):
        response = client.http.get(f"/stats{query}")
        assert response.status_code == 422, response.body


def test_stats_of_an_empty_system(client: Client) -> None:
    answer = client.http.get("/stats").json_body
    assert answer["queues"] == [] and answer["minutes"] == 60
