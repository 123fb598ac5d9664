"""The loops that keep a runner alive survive what one row or one bug does to them: an outcome
Postgres refuses is quarantined (failed, invalid_record) and the others are recorded; a
background thread that dies is started again; an upkeep task that raises runs next period."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from common.handlers import HandlerRegistry
from common.models import JobSubmission
from common.runner.supervise import Supervised
from common.services import Services
from common.upkeep.throttle import Every


class _App:
    def lambda_function(self, name: str) -> Any:
        return lambda func: func


def test_an_outcome_postgres_refuses_is_quarantined_and_the_rest_recorded(
    services: Services,
) -> None:
    # A rule of this database that the runner cannot know: Postgres refuses the outcome.
    with services.store.connection() as conn:
        conn.execute("ALTER TABLE jobs ADD CONSTRAINT no_poison CHECK (result->>'poison' IS NULL)")
    reg = HandlerRegistry()
    reg.handler(_App(), "returns")(lambda event, context: event["payload"])
    jobs = [JobSubmission(type="returns", payload={"n": n}) for n in range(4)]
    jobs.insert(2, JobSubmission(type="returns", payload={"poison": True}))
    ids = [s.job.id for s in services.manager.enqueue(jobs)]
    runner = services.runner(reg, upkeep=[], listen=False, burst=True, poll_interval_s=0.05)
    runner.run()  # before: the recorder died here and the burst never ended
    statuses = {i: services.store.get(i) for i in ids}
    poison = statuses.pop(ids[2])
    assert poison is not None and (poison.status, poison.fail_reason) == (
        "failed",
        "invalid_record",
    )
    assert "no_poison" in (poison.last_error or "")
    assert {job.status for job in statuses.values() if job} == {"completed"}
    assert runner.processed == 5


def test_a_thread_that_dies_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    done = threading.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("a bug met on one row")

    thread = Supervised("djs-test", flaky, done)
    with caplog.at_level(logging.ERROR, logger="djs.runner"):
        thread.start()
        thread.join(30)
    assert not thread.is_alive() and len(calls) == 3 and thread.restarts == 2
    assert "djs-test died (restart 1)" in caplog.text


def test_an_upkeep_task_that_raises_runs_again_next_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    def task() -> int:
        runs.append(1)
        raise ValueError("timestamp too large")

    every = Every(0.0, task, logging.getLogger("djs.janitor"))
    with caplog.at_level(logging.ERROR, logger="djs.janitor"):
        assert every.maybe_run() == 0 and every.maybe_run() == 0
    assert len(runs) == 2 and "janitor failed" in caplog.text
