"""The audit log: each admin verb over the API writes one entry (who, what, how many) in the
transaction of its change; a refused verb writes none; GET /audit pages through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from chalice.test import Client
from psycopg.rows import dict_row

from tests.conftest import post_json
from tests.keys import bearer, make_key
from tests.lifecycle_helpers import body, job, submit

ADMIN = "test-admin"  # the conftest client's key


class Log:
    """The audit table, read directly: `new()` gives the entries written since last asked."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True, row_factory=dict_row)
        self.seen = 0

    def new(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM audit WHERE id > %s ORDER BY id", (self.seen,))
        found = rows.fetchall()
        if found:
            self.seen = found[-1]["id"]
        return found

    def one(self, verb: str, target: str | None, jobs: int | None) -> dict[str, Any]:
        [entry] = self.new()
        assert (entry["verb"], entry["target"], entry["jobs"]) == (verb, target, jobs), entry
        assert (entry["key_name"], entry["role"]) == (ADMIN, "admin")
        assert isinstance(entry["key_id"], int) and entry["request_id"]
        return entry


@pytest.fixture
def log(database_url: str) -> Iterator[Log]:
    found = Log(database_url)
    yield found
    found.conn.close()


def post(client: Client, path: str, payload: Any = None) -> Any:
    response = post_json(client, path, {} if payload is None else payload)
    assert response.status_code in (200, 202), (path, response.body)
    return body(response)


def test_each_single_job_verb_writes_one_entry(client: Client, log: Log) -> None:
    waiting = submit(client, type="echo")["id"]
    delayed = submit(client, type="echo", delay_ms=600_000)["id"]
    post(client, f"/jobs/{waiting}/cancel")
    log.one("cancel", str(waiting), 1)
    post(client, f"/jobs/{waiting}/retry")
    log.one("retry", str(waiting), 1)
    post(client, f"/jobs/{delayed}/promote")
    log.one("promote", str(delayed), 1)
    assert client.http.delete(f"/jobs/{delayed}").status_code == 200
    entry = log.one("remove", str(delayed), 1)
    assert entry["filter"] is None


def test_each_verb_by_filter_writes_one_entry_with_its_filter(client: Client, log: Log) -> None:
    for _ in range(3):
        submit(client, type="echo", queue="q", delay_ms=600_000)
    selection = {"filter": {"queue": "q"}, "limit": 10}
    assert post(client, "/jobs/promote", selection)["promoted"] == 3
    assert log.one("promote", None, 3)["filter"] == selection
    assert post(client, "/jobs/cancel", selection)["cancelled"] == 3
    log.one("cancel", None, 3)
    assert post(client, "/jobs/retry", selection)["retried"] == 3
    log.one("retry", None, 3)
    redrive = {"filter": {"queue": "q"}, "limit": 5, "cursor": None}
    assert post(client, "/jobs/redrive", redrive)["retried"] == 0  # none failed: 0, audited
    assert log.one("redrive", None, 0)["filter"]["filter"]["status"] is None
    assert post(client, "/jobs/remove", selection)["removed"] == 3
    log.one("remove", None, 3)
    assert log.new() == []


def test_queue_verbs_write_one_entry_each(client: Client, log: Log) -> None:
    ids = [submit(client, type="echo", queue="mail")["id"] for _ in range(2)]
    post(client, "/queues/mail/pause")
    log.one("pause", "mail", None)
    post(client, "/queues/mail/resume")
    log.one("resume", "mail", None)
    retention = {"remove_on_complete": {"age_s": 60, "count": None}, "remove_on_fail": None}
    response = client.http.put(
        "/queues/mail/settings",
        headers={"content-type": "application/json"},
        body=json.dumps(retention),
    )
    assert response.status_code == 200
    assert log.one("queue_settings", "mail", None)["filter"] == retention
    for job_id in ids:
        post(client, f"/jobs/{job_id}/cancel")
    log.new()
    assert post(client, "/queues/mail/clean", {"status": "cancelled", "age_s": 0})["removed"] == 2
    entry = log.one("clean", "mail", 2)
    assert entry["filter"] == {"status": "cancelled", "age_s": 0, "limit": 10_000}


def test_creating_and_revoking_a_key_write_one_entry_each(client: Client, log: Log) -> None:
    answer = post_json(client, "/keys", {"name": "audited-key", "role": "viewer"})
    assert answer.status_code == 201, answer.body
    created = body(answer)
    entry = log.one("key_create", str(created["id"]), None)
    assert entry["filter"] == {"name": "audited-key", "role": "viewer", "rate_per_s": None}
    assert created["key"] not in json.dumps(entry, default=str)  # the secret is never logged
    response = client.http.delete(f"/keys/{created['id']}")
    assert response.status_code == 200
    log.one("key_revoke", str(created["id"]), None)
    assert client.http.delete(f"/keys/{created['id'] + 1000}").status_code == 404
    assert log.new() == []


def test_submissions_and_reads_are_not_audited(client: Client, log: Log) -> None:
    job_id = submit(client, type="echo")["id"]
    post_json(client, "/jobs/batch", {"jobs": [{"type": "echo"}] * 3})
    job(client, job_id)
    client.http.get("/queues")
    assert log.new() == []


def test_a_refused_verb_writes_no_entry(client: Client, log: Log) -> None:
    pending = submit(client, type="echo")["id"]
    refused = [
        post_json(client, f"/jobs/{pending}/retry", {}),  # 409: pending is not retryable
        post_json(client, f"/jobs/{pending}/promote", {}),  # 409: not delayed
        post_json(client, "/jobs/999999/cancel", {}),  # 404
        post_json(client, "/jobs/retry", {"filter": {"status": "nope"}}),  # 422
        post_json(client, "/queues/mail/clean", {"status": "failed"}),  # 422: no age, no keep
        post_json(client, "/queues/bad name/pause", {}),  # 422
    ]
    assert [r.status_code for r in refused] == [409, 409, 404, 422, 422, 422]
    assert log.new() == []


def test_an_entry_that_cannot_be_written_undoes_the_change(
    client: Client, log: Log, database_url: str
) -> None:
    """The entry is written after the change, in its transaction: if it fails, so does the
    change, and the job is still pending."""
    job_id = submit(client, type="echo")["id"]
    log.conn.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;"
        "CREATE TRIGGER refuse BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    assert post_json(client, f"/jobs/{job_id}/cancel", {}).status_code == 500
    assert job(client, job_id)["status"] == "pending"
    assert post_json(client, "/queues/default/pause", {}).status_code == 500
    assert body(client.http.get("/queues"))["queues"][0]["paused"] is False
    assert log.new() == []


def test_a_change_that_fails_after_its_entry_leaves_no_entry(client: Client, log: Log) -> None:
    """A check deferred to the commit refuses the change after the entry was written: both
    are rolled back together."""
    job_id = submit(client, type="echo")["id"]
    log.conn.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;"
        "CREATE CONSTRAINT TRIGGER refuse AFTER UPDATE ON jobs DEFERRABLE INITIALLY DEFERRED"
        " FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    assert post_json(client, f"/jobs/{job_id}/cancel", {}).status_code == 500
    selection = {"filter": {"ids": [job_id]}, "limit": 10}
    assert post_json(client, "/jobs/cancel", selection).status_code == 500
    assert job(client, job_id)["status"] == "pending"
    assert log.new() == []


def test_get_audit_pages_newest_first(client: Client, log: Log, database_url: str) -> None:
    for name in ("a", "b", "c", "d", "e"):
        post(client, f"/queues/{name}/pause")
    first = body(client.http.get("/audit?limit=2"))
    assert [e["target"] for e in first["entries"]] == ["e", "d"]
    assert set(first["entries"][0]) == {
        "id",
        "at",
        "key_id",
        "key_name",
        "role",
        "verb",
        "target",
        "filter",
        "jobs",
        "request_id",
    }
    second = body(client.http.get(f"/audit?limit=2&cursor={first['next_cursor']}"))
    assert [e["target"] for e in second["entries"]] == ["c", "b"]
    last = body(client.http.get(f"/audit?limit=2&cursor={second['next_cursor']}"))
    assert [e["target"] for e in last["entries"]] == ["a"] and last["next_cursor"] is None
    assert client.http.get("/audit?limit=0").status_code == 422
    viewer = make_key(database_url, "viewer")
    operator = make_key(database_url, "operator")
    for key in (viewer, operator):
        assert client.http.get("/audit", headers=bearer(key)).status_code == 403
