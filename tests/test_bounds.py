"""Hostile input is refused at the edge, before anything is written (common/limits.py): each
case here was a 500, a stored row djs could not read back, or a dead background loop."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest
from chalice.test import Client

from common import limits
from common.errors import InvalidInput
from common.handlers import Retry
from common.models import JobSubmission
from common.runner.lifecycle import backoff_ms, decide
from common.services import Services
from tests.conftest import post_json

BIG = str(2**63)


def _raw(client: Client, path: str, text: str) -> Any:
    return client.http.post(path, headers={"content-type": "application/json"}, body=text)


def _stored(services: Services) -> int:
    with services.store.connection() as conn:
        return int(conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"])  # type: ignore[index]


@pytest.mark.parametrize(
    "fields",
    [
        {"run_at": "9999-12-31T23:59:59-14:00"},  # year 10000 in UTC: stored, then unreadable
        {"run_at": "2030-01-01T00:00:00+16:00"},  # no such offset
        {"run_at": "2200-01-01T00:00:00Z"},  # beyond the window
        {"run_at": "1900-01-01T00:00:00Z"},
        {"priority": True},
        {"priority": 5.0},
        {"attempts": 2.0},
        {"backoff": {"delay_ms": 7 * 24 * 3600 * 1000, "max_delay_ms": 10**20}},
        {"payload": {"s": "\ud800"}},  # a lone surrogate: not Unicode, refused by jsonb
        {"payload": {"\udfff": 1}},
        {"idempotency_key": "k\ud800"},
    ],
)
def test_bad_fields_are_422_and_nothing_is_stored(
    client: Client, services: Services, fields: dict[str, Any]
) -> None:
    body = json.dumps({"type": "echo", **fields})  # json.dumps escapes the surrogates
    response = _raw(client, "/jobs", body)
    assert response.status_code == 422, response.body
    assert _stored(services) == 0


def test_deep_nesting_is_refused_not_a_recursion_error(client: Client, services: Services) -> None:
    nested: Any = 1
    for _ in range(limits.MAX_JSON_DEPTH + 1):
        nested = [nested]
    too_deep = post_json(client, "/jobs", {"type": "echo", "payload": {"x": nested}})
    assert too_deep.status_code == 422 and "nesting" in too_deep.body.decode()
    unparseable = _raw(client, "/jobs", '{"type": "echo", "payload": ' + "[" * 100_000)
    assert unparseable.status_code == 400
    assert json.loads(unparseable.body)["error"]["code"] == "malformed_json"
    assert _stored(services) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/jobs/{BIG}/retry"),
        ("POST", f"/jobs/{BIG}/promote"),
        ("POST", f"/jobs/{BIG}/cancel"),
        ("DELETE", f"/jobs/{BIG}"),
        ("GET", f"/jobs/{BIG}"),
        ("GET", "/jobs/" + "9" * 5000),
        ("GET", f"/jobs?cursor={BIG}"),
        ("GET", f"/jobs?ids=1,{BIG}"),
    ],
)
def test_ids_beyond_bigint_are_422(client: Client, method: str, path: str) -> None:
    response = client.http.request(method, path)
    assert response.status_code == 422, response.body
    assert json.loads(response.body)["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/jobs/retry", {"filter": {"ids": [2**63]}}),
        ("/queues/default/clean", {"status": "completed", "age_s": 10**12}),
        ("/queues/default/clean", {"status": "completed", "keep": 10**20}),
        ("/jobs/redrive", {"cursor": 2**63}),
        ("/jobs/promote", {"filter": {"created_after": "2020-01-01T00:00:00+15:00"}}),
    ],
)
def test_bulk_bounds_are_422(client: Client, path: str, body: dict[str, Any]) -> None:
    assert post_json(client, path, body).status_code == 422


def test_retention_beyond_its_bounds_is_422(client: Client) -> None:
    response = client.http.put(
        "/queues/default/settings",
        headers={"content-type": "application/json"},
        body=json.dumps({"remove_on_complete": {"age_s": 1e20}}),
    )
    assert response.status_code == 422


def test_waits_between_attempts_are_bounded() -> None:
    """A week's backoff over 100 attempts, or Retry(delay_s=inf), must stay a number Postgres
    can add to now(): the recorder thread died on it."""
    week = limits.MAX_BACKOFF_MS
    assert backoff_ms({"type": "exponential", "delay_ms": week}, attempt=100) == week
    for delay_s in (math.inf, 1e300, -5.0, math.nan):
        decision = decide(Retry(delay_s=delay_s), attempt=1, attempts_left=1, backoff={})
        assert decision.retry_in_ms is not None and 0 <= decision.retry_in_ms <= week


def test_a_value_postgres_refuses_fails_only_its_own_request(services: Services) -> None:
    """Should a value the models let through be refused by Postgres inside a group commit,
    the neighbours' jobs are stored and only its own request fails (422, nothing stored)."""
    poison = JobSubmission.model_construct(**{**JobSubmission(type="echo").__dict__})
    poison.payload = {"s": "\ud800"}  # past the validators, as a bug would let it
    outcomes: dict[int, str] = {}
    start = threading.Barrier(9)

    def call(n: int) -> None:
        start.wait()
        jobs = [poison] if n == 0 else [JobSubmission(type="echo", payload={"n": n})]
        try:
            services.batcher.submit(jobs)
            outcomes[n] = "stored"
        except InvalidInput:
            outcomes[n] = "refused"

    threads = [threading.Thread(target=call, args=(n,)) for n in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == {0: "refused", **{n: "stored" for n in range(1, 9)}}
    assert _stored(services) == 8


def test_an_attempts_log_is_bounded_and_says_what_it_dropped() -> None:
    # 1,000 lines of 2,000 characters were kept per attempt: 2 MB, 40 MB over 20 attempts.
    from common.handlers import JobContext

    context = JobContext("chatty", job_id=1, attempt=1, deadline=0.0)
    for _ in range(2_000):
        context.log("x" * 5_000)
    kept = sum(len(line) for line in context.logs)
    assert kept <= limits.MAX_LOG_CHARS + limits.MAX_LOG_LINE_CHARS + 100
    dropped = 2_000 - (len(context.logs) - 1)
    assert context.logs[-1] == f"... [{dropped} more log lines not kept]"
    assert all(len(line) <= limits.MAX_LOG_LINE_CHARS for line in context.logs)
