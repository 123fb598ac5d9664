"""A single-job admin verb is one guarded statement: it waits for the job's row lock (a runner's
claim or outcome in progress), never skips it, and answers from the state it then finds.

Before, a single-job verb ran the bulk statement (FOR UPDATE SKIP LOCKED), and when that moved
nothing it read the status without the lock: a job locked by a runner about to fail it was
refused as "it is pending", and one locked for more than ~200 ms answered "busy; try again".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from chalice.test import Client

from common.services import Services
from tests import scripted
from tests.conftest import post_json

# Bounds on waits that normally take milliseconds; they only have to hold on a loaded machine.
BLOCKED_BOUND_S = 15.0
# The lock is held at least this long: longer than the old verb's 20 tries 10 ms apart.
HOLD_S = 0.3


def body(response: Any) -> Any:
    return json.loads(response.body)


def submit(client: Client, **fields: Any) -> int:
    response = post_json(client, "/jobs", {"type": "scripted", **fields})
    assert response.status_code == 201, response.body
    return int(body(response)["id"])


def run_burst(services: Services) -> None:
    services.runner(
        scripted.registry, upkeep=[], listen=False, burst=True, poll_interval_s=0.05
    ).run()


def make_active(services: Services, job_id: int) -> None:
    """Claim the job as a runner would (active, with a lease), without running it."""
    claim = services.manager.claim("default", 10, "test-runner", lease_s=60, idle=True)
    assert [j.id for j in claim.jobs] == [job_id]


def _lock_waiters(database_url: str) -> int:
    """Backends of this database waiting for a lock (a fresh snapshot per call)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def while_locked(
    database_url: str, job_id: int, request: Callable[[], Any], change: str | None
) -> Any:
    """Run `request` in a thread while another transaction holds the job's row lock; that
    transaction runs `change` (SQL with %(id)s) and commits once the request waits for it,
    and at least HOLD_S after it started."""
    answers: list[Any] = []
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT id FROM jobs WHERE id = %(id)s FOR UPDATE", {"id": job_id})
        thread = threading.Thread(target=lambda: answers.append(request()))
        started = time.monotonic()
        thread.start()
        deadline = started + BLOCKED_BOUND_S
        # The old code never waited: it answered without the lock, so stop looking then.
        while thread.is_alive() and _lock_waiters(database_url) == 0:
            assert time.monotonic() < deadline, "the request neither waited nor answered"
            time.sleep(0.01)
        time.sleep(max(0.0, started + HOLD_S - time.monotonic()))
        if change is not None:
            holder.execute(change, {"id": job_id})
        holder.commit()
    thread.join(BLOCKED_BOUND_S)
    assert not thread.is_alive() and len(answers) == 1
    return answers[0]


FAIL_IT = (
    "UPDATE jobs SET status = 'failed', fail_reason = 'exhausted', finished_at = now(),"
    " updated_at = now(), changed_by = 'runner' WHERE id = %(id)s"
)


def test_retry_waits_for_the_row_lock_and_retries_what_it_finds(
    client: Client, services: Services, database_url: str
) -> None:
    """A runner holds the pending job's row and fails it: the retry waits, then retries."""
    job_id = submit(client)
    services.queue.claim("default", 10)  # Redis gave the id to that runner
    response = while_locked(
        database_url, job_id, lambda: client.http.post(f"/jobs/{job_id}/retry"), FAIL_IT
    )
    assert response.status_code == 200, response.body
    job = body(response)
    assert (job["id"], job["status"], job["fail_reason"]) == (job_id, "pending", None)
    assert services.queue.claim("default", 10).ids == [job_id]  # pushed again


def test_a_verb_on_a_job_locked_for_long_is_not_busy(
    client: Client, services: Services, database_url: str
) -> None:
    """Locked longer than the old verb's tries (it answered "busy"): the retry waits."""
    job_id = submit(client, payload={"plan": ["fatal"]})
    run_burst(services)
    response = while_locked(
        database_url, job_id, lambda: client.http.post(f"/jobs/{job_id}/retry"), None
    )
    assert response.status_code == 200, response.body
    assert body(response)["status"] == "pending"


def test_a_verb_answers_from_the_state_it_found_after_the_lock(
    client: Client, services: Services, database_url: str
) -> None:
    """The failed job is retried by another transaction meanwhile: ours is refused, naming
    the state it found once the lock was free (not the failed it saw before)."""
    job_id = submit(client, payload={"plan": ["fatal"]})
    run_burst(services)
    make_pending = (
        "UPDATE jobs SET status = 'pending', attempt_offset = attempts, fail_reason = NULL,"
        " finished_at = NULL, updated_at = now(), changed_by = 'api' WHERE id = %(id)s"
    )
    response = while_locked(
        database_url, job_id, lambda: client.http.post(f"/jobs/{job_id}/retry"), make_pending
    )
    assert response.status_code == 409, response.body
    error = body(response)["error"]
    assert error["message"].startswith(f"cannot retry job {job_id}: it is pending")
    assert error["details"] == {"id": job_id, "status": "pending"}


def test_remove_waits_for_the_row_lock(
    client: Client, services: Services, database_url: str
) -> None:
    job_id = submit(client)
    run_burst(services)
    response = while_locked(
        database_url, job_id, lambda: client.http.delete(f"/jobs/{job_id}"), None
    )
    assert response.status_code == 200 and body(response) == {"removed": job_id}
    assert client.http.get(f"/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize("verb", ["retry", "promote"])
def test_a_refusal_names_the_state_it_found(client: Client, verb: str) -> None:
    job_id = submit(client)
    response = client.http.post(f"/jobs/{job_id}/{verb}")
    assert response.status_code == 409, response.body
    error = body(response)["error"]
    assert error["code"] == "conflict"
    assert error["message"].startswith(f"cannot {verb} job {job_id}: it is pending")
    assert error["details"] == {"id": job_id, "status": "pending"}


def test_unknown_ids_are_404_for_every_verb(client: Client) -> None:
    for verb in ("retry", "promote", "cancel"):
        response = client.http.post(f"/jobs/424242/{verb}")
        assert response.status_code == 404, (verb, response.body)
        assert body(response)["error"]["details"] == {"id": 424242}
    assert client.http.delete("/jobs/424242").status_code == 404


def test_cancel_of_an_active_job_is_a_request_and_remove_is_refused(
    client: Client, services: Services
) -> None:
    job_id = submit(client)
    make_active(services, job_id)
    response = client.http.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.body
    job = body(response)
    assert (job["status"], job["cancel_requested"]) == ("active", True)
    refused = client.http.delete(f"/jobs/{job_id}")
    assert refused.status_code == 409, refused.body
    assert body(refused)["error"]["message"].startswith(f"cannot remove job {job_id}: it is active")
    assert client.http.get(f"/jobs/{job_id}").status_code == 200  # still there


def test_cancel_of_a_finished_job_is_409_naming_its_state(
    client: Client, services: Services
) -> None:
    job_id = submit(client)
    run_burst(services)
    response = client.http.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 409, response.body
    error = body(response)["error"]
    assert error["message"].startswith(f"cannot cancel job {job_id}: it is completed")
    assert error["details"] == {"id": job_id, "status": "completed"}
    assert body(client.http.get(f"/jobs/{job_id}"))["status"] == "completed"


def test_cancel_of_a_waiting_job_cancels_it_and_drops_it_from_dispatch(
    client: Client, services: Services
) -> None:
    job_id = submit(client)
    response = client.http.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.body
    assert (body(response)["status"], body(response)["cancel_requested"]) == ("cancelled", False)
    assert services.queue.depth("default") == {"wait": 0, "delayed": 0, "active": 0}


def test_a_lock_held_for_ever_is_a_409_to_retry_not_a_held_connection(
    client: Client, services: Services, database_url: str
) -> None:
    """An admin's open transaction on the row: the verb gives up after its lock timeout
    (5 s) with a 409 the client may retry, instead of holding a pooled connection."""
    job_id = submit(client, payload={"plan": ["fatal"]})
    run_burst(services)
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT id FROM jobs WHERE id = %(id)s FOR UPDATE", {"id": job_id})
        started = time.monotonic()
        response = client.http.post(f"/jobs/{job_id}/retry")
        waited = time.monotonic() - started
        holder.rollback()
    assert response.status_code == 409, response.body
    assert "busy" in body(response)["error"]["message"]
    assert 4.5 <= waited < BLOCKED_BOUND_S
    assert body(client.http.post(f"/jobs/{job_id}/retry"))["status"] == "pending"
