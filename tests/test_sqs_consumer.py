"""The SQS consumer and the scheduled upkeep (worker_app/sqs_consumer.py) through
chalice.test.Client, against moto SQS and the real test Postgres, with no Redis."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chalice.test
import psycopg
import pytest
from chalice.app import Chalice
from chalice.local import LambdaContext
from chalice.test import Client

from api_app.factory import create_app
from common.handlers import HandlerRegistry
from common.models import JobSubmission
from common.services import Services
from common.settings import Settings
from tests.conftest import post_json
from tests.keys import keyed, make_key
from tests.sqsenv import QUEUE, Sqs, sqs, sqs_services, sqs_settings
from worker_app import sqs_consumer

__all__ = ["sqs", "sqs_services", "sqs_settings"]  # fixtures

ROOT = Path(__file__).resolve().parent.parent
calls: Counter[int] = Counter()  # job id -> how many times a handler ran it
lease_left_s: list[Any] = []  # how the "lease" handler reads its lease from Postgres


def _registry() -> tuple[HandlerRegistry, Chalice]:
    app = Chalice(app_name="djs-worker-test")
    registry = HandlerRegistry()

    @registry.handler(app, "count")
    def count(event: dict[str, Any], context: Any) -> Any:
        calls[event["job_id"]] += 1
        return {"ran": event["job_id"]}

    @registry.handler(app, "flaky")
    def flaky(event: dict[str, Any], context: Any) -> Any:
        calls[event["job_id"]] += 1
        raise RuntimeError("flaky by design")

    @registry.handler(app, "hang")
    def hang(event: dict[str, Any], context: Any) -> Any:
        calls[event["job_id"]] += 1
        end = time.monotonic() + 60
        while not context.cancelled and time.monotonic() < end:
            time.sleep(0.02)
        return "woke up"

    @registry.handler(app, "lease", timeout_s=10)
    def lease(event: dict[str, Any], context: Any) -> Any:
        return lease_left_s[0](event["job_id"])

    return registry, app


@contextmanager
def consumer_app(settings: Settings, services: Services, runtime_ms: int) -> Iterator[Client]:
    """The consumer on a test app, each invocation's Lambda context given runtime_ms."""
    calls.clear()
    registry, app = _registry()
    app.register_blueprint(sqs_consumer.blueprint(settings, registry, lambda _: services))
    context = functools.partial(LambdaContext, max_runtime_ms=runtime_ms)
    with pytest.MonkeyPatch.context() as patch, Client(app) as client:
        patch.setattr(chalice.test, "LambdaContext", context)
        yield client


@pytest.fixture
def worker(sqs_settings: Settings, sqs_services: Services) -> Iterator[Client]:
    """Two minutes per invocation."""
    with consumer_app(sqs_settings, sqs_services, 120_000) as client:
        yield client


def deliver(client: Client, bodies: list[str]) -> dict[str, int]:
    event = client.events.generate_sqs_event(message_bodies=bodies, queue_name=QUEUE)
    return dict(client.lambda_.invoke(sqs_consumer.CONSUMER, event).payload)


def upkeep(client: Client) -> dict[str, int]:
    event = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    return dict(client.lambda_.invoke(sqs_consumer.UPKEEP, event).payload)


def submit(svc: Services, job_type: str, n: int = 1, **fields: Any) -> list[int]:
    done = svc.manager.enqueue([JobSubmission(type=job_type, **fields) for _ in range(n)])
    return [d.job.id for d in done]


def rows(svc: Services, statement: str, *params: Any) -> list[Any]:
    with psycopg.connect(svc.settings.database_url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def statuses(svc: Services, ids: list[int]) -> list[str | None]:
    return [svc.store.status_of(i) for i in ids]


def test_a_batch_with_failures_settles_each_record_and_none_runs_twice(
    worker: Client, sqs_services: Services, sqs: Sqs
) -> None:
    good = submit(sqs_services, "count", 7)
    retried = {"type": "fixed", "delay_ms": 30_000}
    bad = submit(sqs_services, "flaky", 3, backoff=retried)
    batch = [m["Body"] for m in sqs.receive()]
    assert len(batch) == 10
    sqs.sent.clear()
    assert deliver(worker, batch) == {"completed": 7, "failed": 3}
    assert statuses(sqs_services, good) == ["completed"] * 7
    assert statuses(sqs_services, bad) == ["delayed"] * 3
    history = rows(sqs_services, "SELECT outcome FROM job_attempts WHERE job_id = ANY(%s)", bad)
    assert [h[0] for h in history] == ["retried"] * 3
    # Each retry is sent to SQS again, with its backoff as the delay.
    assert sorted(sqs.delays()) == sorted(bad)
    assert all(30 < d <= 32 for d in sqs.delays().values())
    assert sqs.delayed() == 3
    # SQS delivers the same batch again (a lost delete, a timed-out function): refused.
    assert deliver(worker, batch) == {"refused": 10}
    assert calls == Counter({i: 1 for i in good + bad})


def test_duplicates_and_bad_bodies_do_not_stop_a_batch(
    worker: Client, sqs_services: Services, sqs: Sqs
) -> None:
    first, second = submit(sqs_services, "count", 2)
    one, two = (json.dumps({"id": i, "queue": "default"}) for i in (first, second))
    hostile = [
        "not json",
        "[]",
        '{"id": -1, "queue": "default"}',
        '{"id": 1, "queue": "a b"}',
        '{"id": true, "queue": "default"}',
        '{"id": "1", "queue": "default"}',
        '{"id": 9223372036854775808, "queue": "default"}',
        '{"id": 1}',
    ]
    tally = deliver(worker, [one, *hostile, one, "x" * 5000, two])
    assert tally == {"completed": 2, "duplicate": 1, "bad": 9}
    assert calls == Counter({first: 1, second: 1})


def test_a_backoff_past_15_minutes_waits_in_postgres_until_the_upkeep_sends_it(
    worker: Client, sqs_services: Services, sqs: Sqs
) -> None:
    [job] = submit(sqs_services, "flaky", backoff={"type": "fixed", "delay_ms": 3_600_000})
    batch = [m["Body"] for m in sqs.receive()]
    sqs.sent.clear()
    assert deliver(worker, batch) == {"failed": 1}
    assert statuses(sqs_services, [job]) == ["delayed"] and sqs.sent == []
    upkeep(worker)
    assert sqs.sent == []  # not due yet
    rows(sqs_services, "UPDATE jobs SET run_at = now() - interval '2 s' WHERE id = %s", job)
    upkeep(worker)
    assert sqs.delays() == {job: 0} and statuses(sqs_services, [job]) == ["pending"]
    assert deliver(worker, [m["Body"] for m in sqs.receive()]) == {"failed": 1}
    assert calls[job] == 2


def test_a_stalled_record_is_recovered_by_the_upkeep(
    worker: Client, sqs_services: Services, sqs: Sqs
) -> None:
    """The function died after its claim: the lease expires and the upkeep sends it again."""
    [job] = submit(sqs_services, "count")
    sqs.receive()
    sqs_services.manager.claim_delivered([job], "sqs:died", lease_s=60)
    rows(sqs_services, "UPDATE jobs SET lease_expires_at = now() - interval '1 s'")
    sqs.sent.clear()
    upkeep(worker)
    assert sqs.delays() == {job: 0}
    assert deliver(worker, [m["Body"] for m in sqs.receive()]) == {"completed": 1}


def test_a_paused_queue_keeps_its_jobs_pending(
    worker: Client, sqs_services: Services, sqs: Sqs
) -> None:
    [job] = submit(sqs_services, "count")
    sqs_services.manager.pause("default", True)
    batch = [m["Body"] for m in sqs.receive()]
    assert deliver(worker, batch) == {"paused": 1}  # SQS deletes the message
    sqs_services.manager.pause("default", False)  # and the resume sends the job again
    assert deliver(worker, [m["Body"] for m in sqs.receive()]) == {"completed": 1}
    assert calls[job] == 1


def test_an_attempt_past_its_timeout_is_recorded_as_timed_out(
    worker: Client, sqs_services: Services, sqs: Sqs
) -> None:
    [job] = submit(sqs_services, "hang", timeout_s=0.3)
    assert deliver(worker, [m["Body"] for m in sqs.receive()]) == {"failed": 1}
    [(error_type, message)] = rows(
        sqs_services, "SELECT error_type, error_message FROM job_attempts WHERE job_id = %s", job
    )
    assert (error_type, message) == ("JobTimeout", "attempt 1 exceeded its 0.3 s timeout")


def test_an_attempt_is_bounded_by_the_invocations_time_left(
    sqs_settings: Settings, sqs_services: Services, sqs: Sqs
) -> None:
    """8 s left, 5 s kept back to record: the 300 s handler gets about 3 s."""
    [job] = submit(sqs_services, "hang")
    with consumer_app(sqs_settings, sqs_services, 8_000) as client:
        assert deliver(client, [m["Body"] for m in sqs.receive()]) == {"failed": 1}
    [(error_type, message)] = rows(
        sqs_services, "SELECT error_type, error_message FROM job_attempts WHERE job_id = %s", job
    )
    timeout_s = float(message.split("its ")[1].split(" s")[0])
    assert error_type == "JobTimeout" and 0 < timeout_s <= 3.0


def test_the_lease_lasts_the_attempts_timeout_not_the_invocations(
    worker: Client, sqs_services: Services, sqs: Sqs
) -> None:
    """The function may die without a word: the upkeep recovers the job within its timeout
    (10 s) plus 30 s, not within the two minutes the invocation had."""
    query = "SELECT extract(epoch FROM lease_expires_at - now())::float FROM jobs WHERE id = %s"
    lease_left_s[:] = [lambda job_id: rows(sqs_services, query, job_id)[0][0]]
    [job] = submit(sqs_services, "lease")
    assert deliver(worker, [m["Body"] for m in sqs.receive()]) == {"completed": 1}
    [(left,)] = rows(sqs_services, "SELECT result FROM jobs WHERE id = %s", job)
    assert 30 < left <= 40


def test_no_time_left_leaves_the_job_pending(
    sqs_settings: Settings, sqs_services: Services, sqs: Sqs
) -> None:
    """chalice.test's own context has 3 s, under the consumer's 5 s margin."""
    registry, app = _registry()
    app.register_blueprint(sqs_consumer.blueprint(sqs_settings, registry, lambda _: sqs_services))
    [job] = submit(sqs_services, "count")
    with Client(app) as client:
        assert deliver(client, [m["Body"] for m in sqs.receive()]) == {"no_time": 1}
    assert statuses(sqs_services, [job]) == ["pending"]


def _load_worker_app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("worker_app_sqs_test", ROOT / "worker_app/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "worker_app_sqs_test", module)
    spec.loader.exec_module(module)
    return module.app


def test_the_worker_app_consumes_sqs_only_when_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = _load_worker_app(monkeypatch, {})
    assert sqs_consumer.CONSUMER not in plain.handler_map
    app = _load_worker_app(
        monkeypatch,
        {
            "DJS_DISPATCH": "sqs",
            "DJS_SQS_CONSUME_QUEUE": QUEUE,
            "DJS_SQS_QUEUE_URLS": '{"*": "https://h/1/q"}',
        },
    )
    assert {sqs_consumer.CONSUMER, sqs_consumer.UPKEEP} <= set(app.handler_map)
    [source] = [s for s in app.event_sources if s.name == sqs_consumer.CONSUMER]
    assert (source.queue, source.batch_size) == (QUEUE, 10)


def test_the_consumer_refuses_a_redis_deployment(sqs_settings: Settings) -> None:
    with pytest.raises(ValueError, match="DJS_DISPATCH=sqs"):
        sqs_consumer.blueprint(
            sqs_settings.model_copy(update={"dispatch": "redis"}), HandlerRegistry()
        )


def test_a_job_submitted_to_the_api_runs_through_sqs_without_redis(
    worker: Client, sqs_services: Services, sqs: Sqs, database_url: str
) -> None:
    """POST /jobs with a submitter key -> stored -> SQS -> the consumer -> completed; Redis is
    never reachable (with DJS_DISPATCH=sqs the API keeps no rate limits in Redis)."""
    submitter = make_key(database_url, "submitter", "sqs-submitter")
    with keyed(Client(create_app(sqs_services)), submitter) as api:
        answer = post_json(api, "/jobs", {"type": "count", "payload": {"n": 1}})
        assert answer.status_code == 201, answer.body
        job = json.loads(answer.body)["id"]
        assert deliver(worker, [m["Body"] for m in sqs.receive()]) == {"completed": 1}
        shown = json.loads(api.http.get(f"/jobs/{job}").body)
    assert shown["status"] == "completed" and shown["result"] == {"ran": job}


def test_rate_limits_kept_in_redis_are_refused_while_redis_is_down(
    sqs_services: Services, database_url: str
) -> None:
    """DJS_RATE_LIMIT=redis in SQS mode asks Redis, which is down: a submitter gets 503."""
    settings = sqs_services.settings.model_copy(update={"rate_limit": "redis"})
    limited = Services(settings, sqs_services.manager)
    submitter = make_key(database_url, "submitter", "sqs-limited")
    with keyed(Client(create_app(limited)), submitter) as api:
        answer = post_json(api, "/jobs", {"type": "count", "payload": {"n": 1}})
    assert answer.status_code == 503, answer.body
    assert json.loads(answer.body)["error"]["code"] == "dependency_unavailable"
