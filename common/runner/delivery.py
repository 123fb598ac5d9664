"""Jobs a push queue delivers (SQS, to a Lambda function), run in-process one by one.

Chalice cannot report which records of an SQS batch failed (no ReportBatchItemFailures): a
raise would have SQS deliver the whole batch again. So each record is settled on its own,
and nothing here raises for one record:

- its body is parsed and bounded; a bad one is logged and dropped;
- its job is claimed under its own lease by the guarded claim, so a duplicate delivery, a
  job already run, cancelled or not yet due is refused and never runs twice;
- its handler runs under the job's timeout, bounded by the time the invocation has left
  minus a margin, on the runner's own executor;
- its outcome is recorded by the runner's own code (common/runner/recorder.py): the same
  retries, backoff, non-retryable errors, dead letters and history. A retry is sent to SQS
  again by the job manager.

If the function dies mid-batch, SQS delivers the batch again: what was recorded is refused,
and a job left active is recovered by the upkeep once its lease expires.
"""

from __future__ import annotations

import json
import logging
import queue
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from common import limits
from common.errors import DependencyDown
from common.handlers import HandlerRegistry
from common.manager import JobManager
from common.models import NAME_PATTERN
from common.records import ClaimedJob
from common.runner.executor import JobExecutor, Outcome
from common.runner.recorder import record_outcomes

log = logging.getLogger("djs.delivery")

_MAX_BODY_CHARS = 1000  # a message is {"id": ..., "queue": ...}: anything longer is not ours
_WATCH_S = 0.05  # how often a running attempt's deadline is checked
_QUEUE_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Delivery:
    """What one message says: which job, of which queue (the claim checks the rest)."""

    id: int
    queue: str


def parse(body: object) -> Delivery:
    """A message body as the SQS dispatcher sends it; ValueError saying what is wrong."""
    if not isinstance(body, str) or len(body) > _MAX_BODY_CHARS:
        raise ValueError(f"not a djs message (a string of at most {_MAX_BODY_CHARS} characters)")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    job_id, name = data.get("id"), data.get("queue")
    if type(job_id) is not int or not 0 < job_id <= limits.BIGINT:
        raise ValueError(f"id must be an integer from 1 to {limits.BIGINT}")
    if not isinstance(name, str) or not _QUEUE_RE.fullmatch(name):
        raise ValueError("queue must be a queue name")
    return Delivery(job_id, name)


class DeliveryConsumer:
    """Settles a batch of delivered messages, each under its own lease."""

    def __init__(
        self,
        manager: JobManager,
        registry: HandlerRegistry,
        margin_s: float = 5.0,
        lease_slack_s: float = 30.0,
    ) -> None:
        self.manager = manager
        # Time kept back from each attempt to record its outcome before the function ends.
        self.margin_s = margin_s
        # A lease lasts the attempt's timeout plus this (claimed for all the time the
        # invocation has left, then cut down): past it, the upkeep recovers the job.
        self.lease_slack_s = lease_slack_s
        self._outcomes: queue.Queue[Outcome] = queue.Queue()
        self.executor = JobExecutor(registry, 1, self._outcomes.put)

    def consume(
        self, bodies: Iterable[object], worker: str, remaining_s: Callable[[], float]
    ) -> Counter[str]:
        """Settle each body; return how many ended how (completed, failed, refused,
        duplicate, paused, bad, no_time, error)."""
        tally: Counter[str] = Counter()
        seen: set[int] = set()
        try:
            paused = {n for n, s in self.manager.store.queue_settings().items() if s["paused"]}
        except DependencyDown as exc:  # nothing can be claimed: the reconciler sends again
            log.warning("postgres is down; %s", exc.message)
            return Counter(error=sum(1 for _ in bodies))
        for body in bodies:
            try:
                tally[self._one(body, worker, seen, paused, remaining_s)] += 1
            except Exception:  # one record must not make SQS deliver the batch again
                log.exception("an SQS record could not be settled; the upkeep will")
                tally["error"] += 1
        return tally

    def _one(
        self,
        body: object,
        worker: str,
        seen: set[int],
        paused: set[str],
        remaining_s: Callable[[], float],
    ) -> str:
        try:
            delivery = parse(body)
        except ValueError as exc:
            log.error("dropped an SQS message: %s", exc)
            return "bad"
        if delivery.id in seen:
            return "duplicate"
        seen.add(delivery.id)
        if delivery.queue in paused:  # left pending; sent again once resumed
            return "paused"
        budget = remaining_s() - self.margin_s
        if budget <= 0:  # left pending; the reconciler sends it again
            log.warning("job %d: no time left in this invocation", delivery.id)
            return "no_time"
        claimed = self.manager.claim_delivered([delivery.id], worker, budget + self.lease_slack_s)
        if not claimed:
            return "refused"
        outcome = self._run(claimed[0], budget)
        self._record(outcome, worker)
        return "completed" if outcome.error is None else "failed"

    def _run(self, job: ClaimedJob, budget_s: float) -> Outcome:
        context = self.executor.submit(job, max_timeout_s=budget_s)
        if context.timeout_s < budget_s:  # no heartbeat here: the lease is all the upkeep has
            try:
                self.manager.renew([job.lease], context.timeout_s + self.lease_slack_s)
            except Exception:  # the claim's longer lease stands; the attempt runs on
                log.exception("job %d: could not shorten its lease", job.id)
        while True:
            try:
                return self._outcomes.get(timeout=_WATCH_S)
            except queue.Empty:
                self.executor.expire_overdue()  # past its deadline: a JobTimeout outcome

    def _record(self, outcome: Outcome, worker: str) -> None:
        try:
            record_outcomes(self.manager, [outcome])
        except DependencyDown as exc:  # its lease expires; the upkeep recovers the job
            log.warning("job %d: outcome not recorded: %s", outcome.job.id, exc.message)
        except Exception as exc:
            self.manager.quarantine(outcome.job, exc, worker)
