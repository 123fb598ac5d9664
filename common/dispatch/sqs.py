"""The SQS side of dispatch, for serverless deployments: a message per ready job, consumed by
the worker app's `on_sqs_message` Lambda function (worker_app/sqs_consumer.py).

A message is `{"id": 12, "queue": "default"}` and nothing else: Postgres holds the job, and
the consumer's guarded claim decides whether it runs (a duplicate, a cancelled job, one
already run: refused). What SQS cannot do, and what stands in for it:

- Delays: SQS delays a message by at most 15 minutes. A job due within that is sent with
  DelaySeconds (rounded up, plus a second, so it never arrives before Postgres's run_at). A
  job due later is not sent: it stays `delayed` in Postgres, and the scheduled upkeep
  promotes it when due, and the job manager sends what it promoted (`keeps_delayed`).
- What it holds: SQS cannot be asked about one message. `missing` answers "all of them"
  (but those due past the cap), so the reconciler sends again every waiting job untouched
  for DJS_SQS_RESEND_AFTER_S. The cost: a job still waiting in SQS past that long gets a
  duplicate message per upkeep run, refused by the claim once one copy has run.
- Forgetting: a message cannot be taken back. A cancelled or removed job's message is
  delivered and its claim refused.
- Pausing: the consumer leaves a paused queue's job pending (Postgres says which queues are
  paused); the reconciler sends it again once the queue is resumed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from common import aws
from common.errors import DependencyDown
from common.records import Ready

MAX_DELAY_S = 900  # SQS's DelaySeconds cap
_BATCH = 10  # send_message_batch's cap


class SqsRefused(Exception):
    """SQS refused some messages of a batch (send_message_batch's `Failed` entries)."""


@contextmanager
def _sqs_errors() -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError, SqsRefused) as exc:
        raise DependencyDown("sqs", exc) from exc


def delay_s(job: Ready, now: datetime) -> int | None:
    """The DelaySeconds to send this job with: 0 if ready now; None if it falls due past
    SQS's 15-minute cap (it waits in Postgres)."""
    if job.due is None:
        return 0
    seconds = (job.due - now).total_seconds()
    if seconds <= 0:
        return 0
    # Up, and one more: arriving before run_at would have the claim refused.
    delay = math.ceil(seconds) + 1
    return delay if delay <= MAX_DELAY_S else None


class SqsDispatcher:
    """The Dispatcher of common/dispatch/protocol.py over SQS queues (not a PollingDispatcher:
    Lambda polls SQS, not djs)."""

    # Delayed jobs past 15 minutes wait in Postgres: whoever promotes them must send them.
    keeps_delayed = False

    def __init__(self, queue_urls: dict[str, str], client: Any = None) -> None:
        if not queue_urls:
            raise ValueError("DJS_DISPATCH=sqs needs DJS_SQS_QUEUE_URLS")
        self.queue_urls = dict(queue_urls)
        self.client = client if client is not None else aws.client("sqs")

    def url(self, queue: str) -> str:
        url = self.queue_urls.get(queue) or self.queue_urls.get("*")
        if url is None:
            raise DependencyDown("sqs", KeyError(f"DJS_SQS_QUEUE_URLS names no queue {queue!r}"))
        return url

    def push(self, jobs: Iterable[Ready]) -> int:
        """Send a message per job due within 15 minutes, 10 per request; return how many
        are ready now. DependencyDown if SQS refused any (the others were sent)."""
        now = datetime.now(UTC)
        by_url: dict[str, list[dict[str, Any]]] = defaultdict(list)
        seen: set[tuple[str, int]] = set()
        for job in jobs:
            delay = delay_s(job, now)
            if delay is None or (job.queue, job.id) in seen:
                continue
            seen.add((job.queue, job.id))
            body = json.dumps({"id": job.id, "queue": job.queue})
            by_url[self.url(job.queue)].append({"MessageBody": body, "DelaySeconds": delay})
        refused: list[str] = []
        with _sqs_errors():
            for url, entries in by_url.items():
                for start in range(0, len(entries), _BATCH):
                    refused += self._send(url, entries[start : start + _BATCH])
            if refused:
                raise SqsRefused(f"{len(refused)} messages refused: {'; '.join(refused[:3])}")
        return sum(1 for entries in by_url.values() for e in entries if e["DelaySeconds"] == 0)

    def _send(self, url: str, entries: list[dict[str, Any]]) -> list[str]:
        batch = [{"Id": str(i), **entry} for i, entry in enumerate(entries)]
        answer = self.client.send_message_batch(QueueUrl=url, Entries=batch)
        return [f"{f.get('Code')}: {f.get('Message', '')}"[:200] for f in answer.get("Failed", [])]

    def forget(self, queue: str, ids: Sequence[int]) -> None:
        """Nothing to do: a message cannot be taken back, and its claim will be refused."""

    def missing(self, jobs: Sequence[Ready]) -> list[Ready]:
        """Every job SQS would take now: it cannot say which it holds (see the module's
        doc). A job due past the 15-minute cap is not missing: it waits in Postgres."""
        now = datetime.now(UTC)
        return [job for job in jobs if delay_s(job, now) is not None]

    def set_paused(self, queue: str, paused: bool) -> None:
        """Nothing to do: the consumer reads the pause from Postgres."""

    def ping(self) -> None:
        with _sqs_errors():
            for url in set(self.queue_urls.values()):
                self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])

    def close(self) -> None:
        self.client.close()
