"""The SQS dispatcher (common/dispatch/sqs.py) against moto SQS and the real test Postgres."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
import redis
from chalice.test import Client
from pydantic import ValidationError

from api_app.factory import create_app
from common.dispatch.sqs import SqsDispatcher
from common.errors import DependencyDown
from common.handlers import HandlerRegistry
from common.models import JobSubmission
from common.records import Ready
from common.services import Services
from common.settings import Settings
from common.upkeep.scheduled import upkeep_once
from tests.sqsenv import Sqs, sqs, sqs_services, sqs_settings

__all__ = ["sqs", "sqs_services", "sqs_settings"]  # fixtures


def submit(svc: Services, **fields: Any) -> int:
    [done] = svc.manager.enqueue([JobSubmission(type="echo", **fields)])
    return done.job.id


def sql(svc: Services, statement: str, *params: Any) -> list[Any]:
    with psycopg.connect(svc.settings.database_url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def status(svc: Services, job_id: int) -> str | None:
    return svc.store.status_of(job_id)


def test_the_setting_chooses_sqs_and_no_runner_can_poll_it(sqs_services: Services) -> None:
    assert isinstance(sqs_services.manager.dispatcher, SqsDispatcher)
    with pytest.raises(TypeError, match="cannot be polled"):
        _ = sqs_services.manager.polling
    sqs_services.manager.dispatcher.ping()
    with pytest.raises(ValueError, match="DJS_DISPATCH=sqs"):
        sqs_services.runner(HandlerRegistry())
    with pytest.raises(redis.ConnectionError):  # so no test here can lean on Redis
        redis.Redis.from_url(sqs_services.settings.redis_url).ping()


def test_push_delays_up_to_15_minutes_and_leaves_later_jobs_in_postgres(
    sqs_services: Services, sqs: Sqs
) -> None:
    now = submit(sqs_services)
    soon = submit(sqs_services, delay_ms=100_000)
    late = submit(sqs_services, delay_ms=2_000_000)  # past SQS's 900 s cap
    delays = sqs.delays()
    assert delays[now] == 0
    assert 100 < delays[soon] <= 102  # rounded up, plus a second: never before run_at
    assert late not in delays
    assert [b["id"] for b in sqs.bodies()] == [now]
    assert sqs.bodies() == [] and sqs.delayed() == 1
    assert status(sqs_services, late) == "delayed"
    # The reconciler is told the job waiting in Postgres is not missing; the others are.
    [(run_at,)] = sql(sqs_services, "SELECT run_at FROM jobs WHERE id = %s", late)
    ready = [Ready(now, "default", 0), Ready(late, "default", 0, run_at)]
    assert sqs_services.manager.dispatcher.missing(ready) == ready[:1]


def test_push_sends_batches_of_ten(sqs_services: Services, sqs: Sqs) -> None:
    calls: list[int] = []
    client = sqs_services.manager.dispatcher.client  # type: ignore[attr-defined]
    client.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch",
        lambda params, **_: calls.append(len(params["Entries"])),
    )
    done = sqs_services.manager.enqueue([JobSubmission(type="echo") for _ in range(23)])
    assert calls == [10, 10, 3]
    assert sorted(b["id"] for b in sqs.bodies()) == sorted(d.job.id for d in done)
    assert {b["queue"] for b in sqs.bodies()} <= {"default"}


def test_a_refused_entry_defers_dispatch_and_the_reconciler_sends_it_again(
    sqs_services: Services, sqs: Sqs
) -> None:
    def refuse_second(params: dict[str, Any], **_: Any) -> None:
        params["Entries"][1]["DelaySeconds"] = 901  # SQS refuses this entry alone

    client = sqs_services.manager.dispatcher.client  # type: ignore[attr-defined]
    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", refuse_second)
    with pytest.raises(DependencyDown, match="sqs"):
        sqs_services.manager.dispatcher.push([Ready(901, "default", 0), Ready(902, "default", 0)])
    assert [b["id"] for b in sqs.bodies()] == [901]
    submitted = sqs_services.manager.enqueue([JobSubmission(type="echo") for _ in range(3)])
    assert [s.dispatched for s in submitted] == [False] * 3  # stored; dispatch deferred
    ids = [s.job.id for s in submitted]
    assert [status(sqs_services, i) for i in ids] == ["pending"] * 3
    assert sorted(b["id"] for b in sqs.bodies()) == [ids[0], ids[2]]  # what got through
    client.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", refuse_second)
    upkeep_once(sqs_services.manager, resend_after_s=600, batch=100)
    assert sqs.bodies() == []  # untouched for less than resend_after_s: not sent again
    sql(sqs_services, "UPDATE jobs SET updated_at = now() - interval '1 hour'")
    upkeep_once(sqs_services.manager, resend_after_s=600, batch=100)
    assert sorted(b["id"] for b in sqs.bodies()) == ids


def test_promoted_jobs_are_sent_once_due(sqs_services: Services, sqs: Sqs) -> None:
    late = submit(sqs_services, delay_ms=3_600_000)
    assert late not in sqs.delays()
    assert sqs_services.manager.promote_due(100) == 0  # not due yet
    sql(sqs_services, "UPDATE jobs SET run_at = now() - interval '2 s' WHERE id = %s", late)
    assert sqs_services.manager.promote_due(100) == 1
    assert status(sqs_services, late) == "pending"
    assert sqs.delays()[late] == 0
    assert [b["id"] for b in sqs.bodies()] == [late]


def test_a_queue_without_an_sqs_queue_is_not_dispatched(sqs_settings: Settings, sqs: Sqs) -> None:
    only = sqs_settings.model_copy(update={"sqs_queue_urls": {"default": sqs.url}})
    svc = Services.connect(only)
    try:
        [done] = svc.manager.enqueue([JobSubmission(type="echo", queue="other")])
        assert not done.dispatched and svc.store.status_of(done.job.id) == "pending"
        [ok] = svc.manager.enqueue([JobSubmission(type="echo")])
        assert ok.dispatched
    finally:
        svc.close()
    assert [b["id"] for b in sqs.bodies()] == [ok.job.id]


def test_ping_names_sqs_when_the_queue_is_gone(sqs_settings: Settings, sqs: Sqs) -> None:
    gone = sqs_settings.model_copy(update={"sqs_queue_urls": {"*": sqs.url + "-gone"}})
    dispatcher = SqsDispatcher(gone.sqs_queue_urls)
    with pytest.raises(DependencyDown, match="sqs"):
        dispatcher.ping()


@pytest.mark.parametrize(
    "urls",
    [
        {"no spaces": "https://sqs.us-east-1.amazonaws.com/1/q"},
        {"default": "ftp://sqs.us-east-1.amazonaws.com/1/q"},
        {"default": "https://sqs.us-east-1.amazonaws.com"},
        {"*": "https://sqs.us-east-1.amazonaws.com/1/q.fifo"},
        {f"q{i}": "https://h/1/q" for i in range(101)},
    ],
)
def test_queue_urls_are_validated(urls: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(dispatch="sqs", sqs_queue_urls=urls)


def test_sqs_dispatch_needs_queue_urls() -> None:
    with pytest.raises(ValueError, match="DJS_SQS_QUEUE_URLS"):
        SqsDispatcher({})


def test_the_api_probes_ask_sqs_not_redis(sqs_services: Services, sqs: Sqs) -> None:
    with Client(create_app(sqs_services)) as client:
        for path in ("/health", "/ready"):
            answer = client.http.get(path)
            assert answer.status_code == 200, answer.body
            assert json.loads(answer.body)["checks"].get("sqs") == "ok"
            assert "redis" not in json.loads(answer.body)["checks"]
        sqs.client.delete_queue(QueueUrl=sqs.url)
        answer = client.http.get("/health")
    assert answer.status_code == 503
    assert json.loads(answer.body)["error"]["details"]["checks"]["sqs"] == "unavailable"
