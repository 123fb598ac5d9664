"""moto SQS and the real test Postgres for the SQS path's tests; Redis pointed at a port
nothing listens on, so a test passes only if the SQS path never needs Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto import mock_aws

from common import aws
from common.services import Services
from common.settings import Settings

QUEUE = "djs-jobs"
NO_REDIS = "redis://127.0.0.1:9/0"  # the discard port: refused at once


@dataclass
class Sqs:
    """The moto queue, and every send_message_batch entry the dispatcher sent."""

    client: Any
    url: str
    sent: list[dict[str, Any]] = field(default_factory=list)

    def receive(self) -> list[dict[str, Any]]:
        """Every message visible now (each received once: hidden for a minute after)."""
        got: list[dict[str, Any]] = []
        while True:
            answer = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=60
            )
            if not answer.get("Messages"):
                return got
            got += answer["Messages"]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.receive()]

    def delayed(self) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])

    def delays(self) -> dict[int, int]:
        """Job id -> the DelaySeconds it was last sent with."""
        return {json.loads(e["MessageBody"])["id"]: e["DelaySeconds"] for e in self.sent}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sqs]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "DJS_AWS_LOCALSTACK", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = aws.client("sqs")
        yield Sqs(client, client.create_queue(QueueName=QUEUE)["QueueUrl"])


@pytest.fixture
def sqs_settings(settings: Settings, sqs: Sqs) -> Settings:
    return settings.model_copy(
        update={
            "dispatch": "sqs",
            "sqs_queue_urls": {"*": sqs.url},
            "sqs_consume_queue": QUEUE,
            "redis_url": NO_REDIS,
        }
    )


@pytest.fixture
def sqs_services(sqs_settings: Settings, sqs: Sqs) -> Iterator[Services]:
    svc = Services.connect(sqs_settings)
    svc.store.pools.durable.wait(timeout=10)
    watch_sends(svc, sqs)
    yield svc
    svc.close()


def watch_sends(svc: Services, sqs: Sqs) -> None:
    """Keep each entry the dispatcher's own client sends (botocore's event hook)."""

    def keep(params: dict[str, Any], **_: Any) -> None:
        sqs.sent += params.get("Entries", [])

    client = svc.manager.dispatcher.client  # type: ignore[attr-defined]
    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", keep)
