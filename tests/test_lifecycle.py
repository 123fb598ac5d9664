"""The job lifecycle over the HTTP API (chalice.test.Client) with a real runner, Postgres and
Redis: retries and backoff, delays, priorities, timeouts, idempotency, batches. The admin verbs
and retention are in test_admin_verbs.py."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from chalice.test import Client

from common.services import Services
from tests import scripted
from tests.conftest import post_json
from tests.lifecycle_helpers import body, job, run_burst, submit

# How late a retry may start: recording, the Redis promotion and the claim take a few ms, but
# a loaded 2-core CI machine running the suite in parallel can stall a process much longer.
SLACK_MS = 400


@pytest.fixture(autouse=True)
def _fresh_starts() -> None:
    scripted.STARTS.clear()  # job ids restart at 1 in every test's database


# --- retries and backoff ------------------------------------------------------------------


def test_default_is_three_attempts_with_exponential_backoff(
    client: Client, services: Services
) -> None:
    created = submit(client, payload={"plan": ["fail"]}, backoff={"delay_ms": 100})
    assert created["max_attempts"] == 3
    run_burst(services)
    done = job(client, created["id"])
    assert done["status"] == "failed" and done["fail_reason"] == "exhausted"
    assert [h["outcome"] for h in done["history"]] == ["retried", "retried", "failed"]
    starts = scripted.STARTS[created["id"]]
    gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(starts)]
    # 100 ms then 200 ms; never early, late only by the runner's scheduling.
    assert 100 <= gaps_ms[0] < 100 + SLACK_MS and 200 <= gaps_ms[1] < 200 + SLACK_MS, gaps_ms


def test_backoff_gaps_fall_inside_the_jittered_envelope(client: Client, services: Services) -> None:
    backoff = {"type": "exponential", "delay_ms": 200, "max_delay_ms": 300, "jitter": 0.5}
    created = submit(client, payload={"plan": ["fail"]}, attempts=4, backoff=backoff)
    run_burst(services)
    starts = scripted.STARTS[created["id"]]
    gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(starts)]
    # Before attempt n+1 the full delay is min(200 * 2^(n-1), 300): 200, 300, 300; jitter 0.5
    # draws from [d/2, d].
    for gap, full in zip(gaps_ms, (200, 300, 300), strict=True):
        assert full * 0.5 <= gap < full + SLACK_MS, gaps_ms


def test_fixed_backoff_and_success_after_failures(client: Client, services: Services) -> None:
    created = submit(
        client, payload={"plan": ["fail", "fail", "ok"]}, backoff={"type": "fixed", "delay_ms": 50}
    )
    run_burst(services)
    done = job(client, created["id"])
    assert done["status"] == "completed" and done["result"]["attempt"] == 3
    assert done["fail_reason"] is None and done["attempts_made"] == 3


def test_non_retryable_fails_at_once(client: Client, services: Services) -> None:
    created = submit(client, payload={"plan": ["fatal"]}, attempts=5)
    run_burst(services)
    done = job(client, created["id"])
    assert (done["status"], done["fail_reason"], len(done["history"])) == (
        "failed",
        "non_retryable",
        1,
    )
    assert "NonRetryableError" in done["history"][0]["traceback"]


def test_retry_outcome_waits_its_own_delay(client: Client, services: Services) -> None:
    created = submit(client, payload={"plan": ["retry:0.3", "ok"]}, backoff={"delay_ms": 1})
    run_burst(services)
    starts = scripted.STARTS[created["id"]]
    assert starts[1] - starts[0] >= 0.3
    assert job(client, created["id"])["status"] == "completed"


def test_attempt_history_keeps_logs_progress_and_errors(client: Client, services: Services) -> None:
    created = submit(client, payload={"plan": ["fail", "ok"]}, backoff={"delay_ms": 1})
    run_burst(services)
    done = job(client, created["id"])
    first, second = done["history"]
    assert first["logs"] == ["attempt 1: fail"] and first["progress"] == 50
    assert first["error_type"] == "RuntimeError" and "planned failure" in first["error_message"]
    assert second["logs"] == ["attempt 2: ok"] and second["progress"] == 100
    assert second["duration_ms"] >= 0 and second["worker"]
    moves = [(e["from_status"], e["to_status"], e["cause"]) for e in done["events"]]
    assert moves == [
        (None, "pending", "api"),
        ("pending", "active", "runner"),
        ("active", "delayed", "runner"),
        ("delayed", "active", "runner"),
        ("active", "completed", "runner"),
    ]


# --- delays and priority ------------------------------------------------------------------


def test_delay_ms_waits_in_delayed_then_runs_never_early(
    client: Client, services: Services
) -> None:
    created = submit(client, delay_ms=400)
    assert created["status"] == "delayed"
    submitted_at = datetime.fromisoformat(created["created_at"])
    run_burst(services)
    started = datetime.fromtimestamp(scripted.STARTS[created["id"]][0], UTC)
    assert started >= submitted_at + timedelta(milliseconds=400)
    assert job(client, created["id"])["status"] == "completed"


def test_run_at_needs_a_time_zone(client: Client) -> None:
    response = post_json(client, "/jobs", {"type": "scripted", "run_at": "2030-01-01T00:00:00"})
    assert response.status_code == 422
    assert body(response)["error"]["details"][0]["path"] == "run_at"
    both = post_json(
        client, "/jobs", {"type": "scripted", "delay_ms": 5, "run_at": "2030-01-01T00:00:00Z"}
    )
    assert both.status_code == 422


def test_delayed_jobs_run_in_due_order(client: Client, services: Services) -> None:
    now = datetime.now(UTC)
    ids = {}
    for offset_ms in (450, 150, 300):
        run_at = (now + timedelta(milliseconds=offset_ms)).isoformat()
        ids[offset_ms] = submit(client, run_at=run_at)["id"]
    run_burst(services, concurrency=1)
    order = sorted(ids.values(), key=lambda i: scripted.STARTS[i][0])
    assert order == [ids[150], ids[300], ids[450]]
    for offset_ms, job_id in ids.items():
        assert scripted.STARTS[job_id][0] >= (now + timedelta(milliseconds=offset_ms)).timestamp()


def test_priority_higher_first_then_fifo_and_retries_keep_it(
    client: Client, services: Services
) -> None:
    low = [submit(client, priority=0)["id"] for _ in range(2)]
    high = [submit(client, priority=10)["id"] for _ in range(2)]
    top = submit(client, priority=1000)["id"]
    run_burst(services, concurrency=1)
    order = sorted(low + high + [top], key=lambda i: scripted.STARTS[i][0])
    assert order == [top, *high, *low]
    assert job(client, top)["priority"] == 1000


def test_priority_out_of_range_is_422(client: Client) -> None:
    assert post_json(client, "/jobs", {"type": "scripted", "priority": 1001}).status_code == 422


# --- timeouts -----------------------------------------------------------------------------


def test_timeout_fails_the_attempt_and_retries_and_the_runner_goes_on(
    client: Client, services: Services
) -> None:
    hung = submit(client, payload={"plan": ["hang", "ok"]}, timeout_s=0.3, backoff={"delay_ms": 1})
    others = [submit(client)["id"] for _ in range(5)]
    run_burst(services, concurrency=1)
    done = job(client, hung["id"])
    assert done["status"] == "completed" and len(done["history"]) == 2
    assert done["history"][0]["error_type"] == "JobTimeout"
    assert "0.3 s timeout" in done["history"][0]["error_message"]
    assert all(job(client, i)["status"] == "completed" for i in others)


def test_timeout_on_the_last_attempt_fails_with_reason_timeout(
    client: Client, services: Services
) -> None:
    hung = submit(client, payload={"plan": ["hang"]}, timeout_s=0.2, attempts=1)
    run_burst(services)
    done = job(client, hung["id"])
    assert (done["status"], done["fail_reason"]) == ("failed", "timeout")
    assert "Stack of the timed-out handler" in done["history"][0]["traceback"]


def test_handler_context_reports_remaining_time(client: Client, services: Services) -> None:
    created = submit(client, timeout_s=2)
    run_burst(services)
    remaining = job(client, created["id"])["result"]["remaining_ms"]
    assert 1000 < remaining <= 2000


# --- idempotency --------------------------------------------------------------------------


def test_idempotent_replay_returns_the_original_with_200(
    client: Client, services: Services
) -> None:
    first = post_json(client, "/jobs", {"type": "scripted"}, **{"Idempotency-Key": "k1"})
    again = post_json(client, "/jobs", {"type": "scripted"}, **{"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert body(first)["id"] == body(again)["id"] and body(again)["created"] is False
    field = post_json(client, "/jobs", {"type": "scripted", "idempotency_key": "k1"})
    assert field.status_code == 200 and body(field)["id"] == body(first)["id"]
    other_queue = post_json(
        client, "/jobs", {"type": "scripted", "queue": "q2"}, **{"Idempotency-Key": "k1"}
    )
    assert other_queue.status_code == 201  # keys are per queue
    assert services.queue.depth("default")["wait"] == 1  # the replay pushed nothing


def test_same_key_different_body_is_409(client: Client) -> None:
    post_json(
        client, "/jobs", {"type": "scripted", "payload": {"a": 1}}, **{"Idempotency-Key": "k"}
    )
    clash = post_json(
        client, "/jobs", {"type": "scripted", "payload": {"a": 2}}, **{"Idempotency-Key": "k"}
    )
    assert clash.status_code == 409 and body(clash)["error"]["code"] == "conflict"


# --- batch --------------------------------------------------------------------------------


def test_batch_stores_all_in_order(client: Client, services: Services) -> None:
    response = post_json(
        client,
        "/jobs/batch",
        {"jobs": [{"type": "scripted", "payload": {"i": i}} for i in range(50)]},
    )
    assert response.status_code == 201
    created = body(response)["jobs"]
    assert [j["payload"]["i"] for j in created] == list(range(50))
    assert [j["id"] for j in created] == sorted(j["id"] for j in created)
    run_burst(services)
    assert all(job(client, j["id"])["status"] == "completed" for j in created)


def test_batch_is_all_or_nothing(client: Client, services: Services) -> None:
    jobs = [{"type": "scripted"} for _ in range(5)] + [{"type": "scripted", "priority": -1}]
    response = post_json(client, "/jobs/batch", {"jobs": jobs})
    assert response.status_code == 422
    assert body(response)["error"]["details"][0]["path"] == "jobs.5.priority"
    post_json(
        client, "/jobs", {"type": "scripted", "payload": {"a": 1}}, **{"Idempotency-Key": "x"}
    )
    clash = [
        {"type": "scripted"},
        {"type": "scripted", "payload": {"a": 2}, "idempotency_key": "x"},
    ]
    assert post_json(client, "/jobs/batch", {"jobs": clash}).status_code == 409
    assert services.store.queue_counts() == {"default": {"pending": 1}}


def test_batch_limit_is_1000(client: Client) -> None:
    response = post_json(client, "/jobs/batch", {"jobs": [{"type": "scripted"}] * 1001})
    assert response.status_code == 422
