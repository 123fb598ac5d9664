"""The admin verbs over the HTTP API (chalice.test.Client) with a real runner, Postgres and
Redis: retry, promote, cancel, remove, bulk filters, redrive, pause, clean and retention."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from chalice.test import Client

from common.runner import Runner
from common.services import Services
from common.upkeep.janitor import Janitor
from tests import lifecycle_helpers
from tests.conftest import post_json
from tests.lifecycle_helpers import body, job, run_burst, submit, wait_for


@pytest.fixture
def background_runner(services: Services) -> Iterator[Runner]:
    with lifecycle_helpers.background_runner(services) as runner:
        yield runner


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


def test_attempts_made_never_exceeds_max_attempts_across_retries(
    client: Client, services: Services
) -> None:
    """README: attempts_made counts the current budget (it never exceeds max_attempts);
    attempts_total counts every attempt, as history lists them. Before, attempts_made was
    the total: 4 of 2 after one manual retry."""
    job_id = submit(client, payload={"plan": ["fail"]}, attempts=2, backoff={"delay_ms": 1})["id"]
    seen = [job(client, job_id)]
    for budget in (1, 2, 3):
        run_burst(services)
        failed = job(client, job_id)
        assert (failed["status"], failed["fail_reason"]) == ("failed", "exhausted")
        assert (failed["attempts_made"], failed["attempts_total"]) == (2, 2 * budget)
        retried = body(client.http.post(f"/jobs/{job_id}/retry"))
        assert (retried["attempts_made"], retried["attempts_total"]) == (0, 2 * budget)
        [listed] = body(client.http.get("/jobs"))["jobs"]  # the list says the same
        assert (listed["attempts_made"], listed["attempts_total"]) == (0, 2 * budget)
        seen += [failed, retried]
    for snapshot in seen:
        assert 0 <= snapshot["attempts_made"] <= snapshot["max_attempts"] == 2, snapshot
        assert len(snapshot["history"]) == snapshot["attempts_total"], snapshot


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
