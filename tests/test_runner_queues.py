"""Which queues a runner serves, and in what order: every queue Postgres knows by default,
or a weighted list (`--queues emails:3,default`). Before, a runner served one queue only."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from common.errors import InvalidInput
from common.handlers import HandlerRegistry
from common.models import JobSubmission
from common.runner import QueueSelection, Runner
from common.runner.queues import parse_queues
from common.services import Services
from worker_app.app import registry

# How long a new queue may take to be served by a running runner. It is found within a poll
# interval (0.2 s in tests); the bound only has to hold on a loaded 2-core machine.
DISCOVERY_BOUND_S = 15.0


class _App:
    def lambda_function(self, name: str) -> Any:
        return lambda func: func


def _submit(services: Services, queue: str, n: int = 1, **fields: Any) -> list[int]:
    jobs = [JobSubmission(type="echo", queue=queue, **fields) for _ in range(n)]
    return [s.job.id for s in services.manager.enqueue(jobs)]


def _burst(services: Services, reg: HandlerRegistry = registry, **kw: Any) -> Runner:
    runner = services.runner(reg, upkeep=[], listen=False, burst=True, poll_interval_s=0.05, **kw)
    runner.run()
    return runner


# --- parse_queues ----------------------------------------------------------------------------


def test_parse_queues_reads_names_and_weights() -> None:
    assert parse_queues("a:3,b") == {"a": 3, "b": 1}
    assert parse_queues(" emails:100 , default ") == {"emails": 100, "default": 1}
    # A name may hold colons: only digits after the last one are a weight.
    assert parse_queues("v1:x") == {"v1:x": 1}
    assert parse_queues("v1:x:2") == {"v1:x": 2}
    assert parse_queues("v1:x:2,v1:y") == {"v1:x": 2, "v1:y": 1}


@pytest.mark.parametrize(
    "spec",
    [
        *("a:0", "a:101", "b,a:0", "bad name", "a/b", "a,,b", "a,", "", "x" * 101, "é:2"),
        # Near misses that once became queue names of weight 1, and a name given twice.
        *("a:-1", "emails:1.5", ":3", "a:2,a:3"),
    ],
)
def test_parse_queues_rejects_bad_names_and_weights(spec: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_queues(spec)
    assert caught.value.details[0]["path"] == "queues"


# --- the weighted order ----------------------------------------------------------------------


def _firsts(selection: QueueSelection, turns: int) -> list[str]:
    firsts = []
    for _ in range(turns):
        order = selection.order()
        assert sorted(order) == sorted(selection.names), order  # every queue, once
        firsts.append(order[0])
    return firsts


def _longest_wait(firsts: list[str], name: str) -> int:
    """The most turns in a row that `name` was not first."""
    longest = run = 0
    for first in firsts:
        run = 0 if first == name else run + 1
        longest = max(longest, run)
    return longest


def test_weights_decide_how_often_a_queue_comes_first() -> None:
    firsts = _firsts(QueueSelection({"a": 3, "b": 1}), 400)
    assert Counter(firsts) == {"a": 300, "b": 100}
    # Smooth: b never waits behind a burst of a, and a never behind b.
    assert _longest_wait(firsts, "b") <= 3 and _longest_wait(firsts, "a") <= 1
    # In every stretch of 4 turns each queue comes first as often as its weight says.
    for i in range(len(firsts) - 3):
        assert Counter(firsts[i : i + 4]) == {"a": 3, "b": 1}, (i, firsts[i : i + 4])


def test_three_weighted_queues_share_every_stretch_in_proportion() -> None:
    weights = {"big": 5, "mid": 2, "small": 1}
    firsts = _firsts(QueueSelection(weights), 800)
    assert Counter(firsts) == {"big": 500, "mid": 200, "small": 100}
    assert _longest_wait(firsts, "small") <= 7 and _longest_wait(firsts, "mid") <= 4
    for i in range(len(firsts) - 7):
        assert Counter(firsts[i : i + 8]) == weights, (i, firsts[i : i + 8])


def test_equal_weights_take_turns() -> None:
    firsts = _firsts(QueueSelection({"x": 1, "y": 1, "z": 1}), 300)
    assert Counter(firsts) == {"x": 100, "y": 100, "z": 100}
    assert all(_longest_wait(firsts, name) <= 2 for name in "xyz")


def test_strict_order_is_the_listed_order_every_turn() -> None:
    selection = QueueSelection({"high": 1, "mid": 1, "low": 1}, strict=True)
    assert all(selection.order() == ["high", "mid", "low"] for _ in range(50))


@pytest.mark.parametrize("weights", [None, {"high": 2, "low": 1}])
def test_strict_order_needs_a_list_without_weights(weights: dict[str, int] | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        QueueSelection(weights, strict=True)
    assert caught.value.details[0]["path"] == "queues"


# --- a real runner -----------------------------------------------------------------------------


def test_a_runner_with_no_list_serves_every_queue_in_one_burst(services: Services) -> None:
    ids = {q: _submit(services, q, 5) for q in ("default", "emails", "reports")}
    runner = _burst(services, concurrency=4)
    assert runner.processed == 15
    for queue, queue_ids in ids.items():
        for job_id in queue_ids:
            job = services.store.get(job_id)
            assert job is not None and (job.queue, job.status) == (queue, "completed")


def test_a_runner_with_a_list_serves_only_those_queues(services: Services) -> None:
    [mine] = _submit(services, "mine")
    [other] = _submit(services, "other")
    runner = _burst(services, queues={"mine": 1})
    assert runner.processed == 1
    assert services.store.status_of(mine) == "completed"
    assert services.store.status_of(other) == "pending"


def test_claims_follow_the_weights_while_both_queues_have_work(services: Services) -> None:
    ran: list[str] = []
    reg = HandlerRegistry()
    reg.handler(_App(), "echo")(lambda event, context: ran.append(event["queue"]))
    _submit(services, "a", 40)
    _submit(services, "b", 40)
    # One slot: each turn claims one job, from the first queue in the turn's order.
    runner = _burst(services, reg, queues={"a": 3, "b": 1}, concurrency=1)
    assert runner.processed == 80
    assert Counter(ran[:40]) == {"a": 30, "b": 10}, ran[:40]
    assert _longest_wait(ran[:40], "b") <= 3, ran[:40]
    assert ran[53:] == ["b"] * 27  # a ran out after its 40th job: b's rest ran


def test_a_queue_that_appears_after_the_start_is_served(services: Services) -> None:
    runner = services.runner(registry, upkeep=[], listen=False, poll_interval_s=0.05)
    thread = threading.Thread(target=runner.run, name="discovery-runner")
    thread.start()
    try:
        [job_id] = _submit(services, "born_later", payload={"n": 1})
        deadline = time.monotonic() + DISCOVERY_BOUND_S
        while services.store.status_of(job_id) != "completed" and time.monotonic() < deadline:
            time.sleep(0.02)
        job = services.store.get(job_id)
        assert job is not None and job.status == "completed", job
        assert job.result == {"n": 1}
    finally:
        runner.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert "born_later" in runner.queues.names
