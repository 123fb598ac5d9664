"""The job lifecycle over the HTTP API (chalice.test.Client) with a real runner, Postgres and
Redis: retries and backoff, delays, priorities, timeouts, idempotency, admin verbs, retention."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from common.runner import Runner
from common.services import Services
from common.upkeep.janitor import Janitor
from tests import scripted
from tests.conftest import post_json

# How late a retry may start: recording, the Redis promotion and the claim take a few ms, but
# a loaded 2-core CI machine running the suite in parallel can stall a process much longer.
SLACK_MS = 400


def body(response: Any) -> Any:
    return json.loads(response.body)


def submit(client: Client, **fields: Any) -> dict[str, Any]:
    fields.setdefault("type", "scripted")
    response = post_json(client, "/jobs", fields)
    assert response.status_code in (200, 201), response.body
    return body(response)


def job(client: Client, job_id: int) -> dict[str, Any]:
    return body(client.http.get(f"/jobs/{job_id}"))


@pytest.fixture(autouse=True)
def _fresh_starts() -> None:
    scripted.STARTS.clear()  # job ids restart at 1 in every test's database


def run_burst(services: Services, **kw: Any) -> Runner:
    runner = services.runner(
        scripted.registry,
        upkeep=[],
        listen=False,
        burst=True,
        poll_interval_s=0.05,
        concurrency=kw.pop("concurrency", 4),
        **kw,
    )
    runner.run()
    return runner


@pytest.fixture
def background_runner(services: Services) -> Iterator[Runner]:
    runner = services.runner(
        scripted.registry,
        listen=False,
        poll_interval_s=0.05,
        concurrency=4,
        upkeep=[Janitor(services.manager, interval_s=0.1)],
    )
    thread = threading.Thread(target=runner.run)
    thread.start()
    yield runner
    runner.stop()
    thread.join(10)


def wait_for(client: Client, job_id: int, status: str, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = job(client, job_id)
        if current["status"] == status:
            return current
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} is {current['status']}, not {status}")


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


# --- admin verbs --------------------------------------------------------------------------


def test_retry_gives_a_fresh_budget_and_keeps_history(client: Client, services: Services) -> None:
    created = submit(
        client, payload={"plan": ["fail", "fail", "ok"]}, attempts=2, backoff={"delay_ms": 1}
    )
    run_burst(services)
    assert job(client, created["id"])["status"] == "failed"
    response = client.http.post(f"/jobs/{created['id']}/retry")
    assert response.status_code == 200 and body(response)["status"] == "pending"
    run_burst(services)
    done = job(client, created["id"])
    # The manual retry opened a fresh budget of 2: one attempt of it is used, three in all.
    assert done["status"] == "completed" and done["attempts_made"] == 1
    assert done["attempts_total"] == 3 and done["max_attempts"] == 2
    assert [h["attempt"] for h in done["history"]] == [1, 2, 3]
    assert (
        client.http.post(f"/jobs/{created['id']}/retry").status_code == 200
    )  # completed -> pending


def test_illegal_single_verbs_are_409_and_unknown_404(client: Client) -> None:
    pending = submit(client)["id"]
    for verb in ("retry", "promote"):
        response = client.http.post(f"/jobs/{pending}/{verb}")
        assert response.status_code == 409 and "pending" in body(response)["error"]["message"]
    assert client.http.post("/jobs/999999/retry").status_code == 404
    assert client.http.delete("/jobs/999999").status_code == 404


def test_promote_runs_a_delayed_job_now(client: Client, services: Services) -> None:
    created = submit(client, delay_ms=60_000)
    response = client.http.post(f"/jobs/{created['id']}/promote")
    assert response.status_code == 200 and body(response)["status"] == "pending"
    run_burst(services)
    assert job(client, created["id"])["status"] == "completed"


def test_cancel_pending_and_delayed(client: Client, services: Services) -> None:
    pending, delayed = submit(client)["id"], submit(client, delay_ms=60_000)["id"]
    for job_id in (pending, delayed):
        response = client.http.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 200 and body(response)["status"] == "cancelled"
    assert services.queue.depth("default") == {"wait": 0, "delayed": 0, "active": 0}
    run_burst(services)
    assert job(client, pending)["status"] == "cancelled" and job(client, pending)["history"] == []


def test_cancel_active_is_seen_by_the_handler(
    client: Client, services: Services, background_runner: Runner
) -> None:
    created = submit(client, payload={"plan": ["cancellable"]}, attempts=3)
    wait_for(client, created["id"], "active")
    response = client.http.post(f"/jobs/{created['id']}/cancel")
    assert response.status_code == 202 and body(response)["cancel_requested"] is True
    done = wait_for(client, created["id"], "failed")
    assert done["fail_reason"] == "cancelled" and len(done["history"]) == 1


def test_remove_deletes_history_and_refuses_active(
    client: Client, services: Services, background_runner: Runner
) -> None:
    done = submit(client)["id"]
    wait_for(client, done, "completed")
    assert client.http.delete(f"/jobs/{done}").status_code == 200
    assert client.http.get(f"/jobs/{done}").status_code == 404
    active = submit(client, payload={"plan": ["cancellable"]})["id"]
    wait_for(client, active, "active")
    refused = client.http.delete(f"/jobs/{active}")
    assert refused.status_code == 409 and "active" in body(refused)["error"]["message"]
    client.http.post(f"/jobs/{active}/cancel")


def test_bulk_verbs_take_a_filter(client: Client, services: Services) -> None:
    failed = [submit(client, payload={"plan": ["fatal"]}, queue="bulk")["id"] for _ in range(3)]
    submit(client, payload={"plan": ["fatal"]}, queue="other")
    run_burst(services, queues={"bulk": 1})
    run_burst(services)
    empty = post_json(client, "/jobs/retry", {"filter": {}})
    assert empty.status_code == 422
    response = post_json(client, "/jobs/retry", {"filter": {"queue": "bulk", "status": "failed"}})
    assert body(response)["ids"] == failed
    assert post_json(client, "/jobs/cancel", {"filter": {"queue": "bulk"}}).status_code == 200
    assert {job(client, i)["status"] for i in failed} == {"cancelled"}
    removed = post_json(
        client, "/jobs/remove", {"filter": {"queue": "bulk", "status": "cancelled"}}
    )
    assert body(removed)["removed"] == 3


def test_bulk_filter_by_created_range(client: Client) -> None:
    before = submit(client, delay_ms=60_000)["id"]
    cutoff = datetime.now(UTC).isoformat()
    after = submit(client, delay_ms=60_000)["id"]
    response = post_json(client, "/jobs/promote", {"filter": {"created_after": cutoff}})
    assert body(response)["ids"] == [after]
    assert job(client, before)["status"] == "delayed"


def test_redrive_pages_by_cursor_and_says_how_many_remain(
    client: Client, services: Services
) -> None:
    ids = [submit(client, payload={"plan": ["fatal", "ok"]})["id"] for _ in range(5)]
    run_burst(services)
    first = body(post_json(client, "/jobs/redrive", {"filter": {"type": "scripted"}, "limit": 4}))
    assert first["ids"] == ids[:4] and first["next_cursor"] == ids[3]
    assert first["remaining"] == 1 and first["more"] is True
    request = {"filter": {"type": "scripted"}, "cursor": first["next_cursor"]}
    rest = body(post_json(client, "/jobs/redrive", request))
    assert rest["ids"] == [ids[4]] and rest["remaining"] == 0 and rest["more"] is False
    run_burst(services)
    assert {job(client, i)["status"] for i in ids} == {"completed"}


def test_a_redrive_walk_takes_each_job_once_though_it_fails_again(
    client: Client, services: Services
) -> None:
    """A job that fails again while the walk goes on is behind the cursor: it is not taken a
    second time, and jobs after it are reached (before, the walk retried job 1 for ever)."""
    ids = [submit(client, payload={"plan": ["fatal"] * 5})["id"] for _ in range(3)]
    run_burst(services)
    taken: list[int] = []
    cursor = None
    for _ in range(10):  # bounded: three jobs need three steps
        step = body(post_json(client, "/jobs/redrive", {"limit": 1, "cursor": cursor}))
        taken += step["ids"]
        run_burst(services)  # the retried job fails again before the next step
        if not step["more"]:
            break
        cursor = step["next_cursor"]
    assert taken == ids
    assert [job(client, i)["attempts_total"] for i in ids] == [2, 2, 2]


def test_pause_holds_claims_but_accepts_submissions(client: Client, services: Services) -> None:
    assert client.http.post("/queues/default/pause").status_code == 200
    created = submit(client)
    assert created["status"] == "pending"
    runner = run_burst(services)
    assert runner.processed == 0 and job(client, created["id"])["status"] == "pending"
    queues = body(client.http.get("/queues"))["queues"]
    assert queues[0]["paused"] is True
    client.http.post("/queues/default/resume")
    run_burst(services)
    assert job(client, created["id"])["status"] == "completed"


# --- clean and retention ------------------------------------------------------------------


def test_clean_by_count_and_by_age(client: Client, services: Services) -> None:
    ids = [submit(client)["id"] for _ in range(5)]
    run_burst(services)
    keep2 = post_json(client, "/queues/default/clean", {"status": "completed", "keep": 2})
    assert body(keep2)["removed"] == 3
    remaining = [j["id"] for j in body(client.http.get("/jobs?status=completed"))["jobs"]]
    assert len(remaining) == 2 and set(remaining) <= set(ids)
    assert (
        body(post_json(client, "/queues/default/clean", {"status": "completed", "age_s": 3600}))[
            "removed"
        ]
        == 0
    )
    time.sleep(1.1)
    assert (
        body(post_json(client, "/queues/default/clean", {"status": "completed", "age_s": 1}))[
            "removed"
        ]
        == 2
    )
    assert post_json(client, "/queues/default/clean", {"status": "completed"}).status_code == 422


def test_retention_is_enforced_by_the_janitor(client: Client, services: Services) -> None:
    response = client.http.put(
        "/queues/default/settings",
        headers={"content-type": "application/json"},
        body=json.dumps({"remove_on_complete": {"count": 2}, "remove_on_fail": {"age_s": 0}}),
    )
    assert response.status_code == 200
    for _ in range(4):
        submit(client)
    submit(client, payload={"plan": ["fatal"]})
    run_burst(services)
    time.sleep(0.01)
    Janitor(services.manager).run_once()
    counts = services.store.queue_counts()["default"]
    assert counts == {"completed": 2}
    keys = services.queue.redis.keys(f"{services.settings.redis_prefix}:*")
    sizes = {k.decode(): services.queue.redis.type(k).decode() for k in keys}
    assert all(services.queue.redis.zcard(k) == 0 for k, t in sizes.items() if t == "zset")


def test_janitor_marks_due_delayed_jobs_pending(client: Client, services: Services) -> None:
    created = submit(client, delay_ms=50)
    time.sleep(1.1)  # the janitor leaves the first second to the runners
    Janitor(services.manager).run_once()
    moved = job(client, created["id"])
    assert moved["status"] == "pending"
    assert moved["events"][-1] == {
        **moved["events"][-1],
        "from_status": "delayed",
        "cause": "janitor",
    }
