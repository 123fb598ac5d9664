"""Each Lua script against a real Redis: enqueue, claim, ack."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from common.dispatch import RedisQueue
from common.records import Ready
from common.services import Services


def q(services: Services) -> RedisQueue:
    return services.queue


def test_keys_share_one_hash_tag(services: Services) -> None:
    k = q(services).keys("emails")
    names = [k.wait, k.delayed, k.prio, k.active, k.signal, k.paused]
    assert all("{emails}" in n and n.startswith(services.settings.redis_prefix) for n in names)


def test_enqueue_is_idempotent_and_claim_pops_fifo(services: Services) -> None:
    rq = q(services)
    assert rq.push([Ready(i, "default", 0) for i in (1, 2, 3)]) == 3
    assert rq.push([Ready(2, "default", 0)]) == 0  # already waiting: keeps its place
    claimed = rq.claim("default", 2)
    assert claimed.ids == [1, 2]
    assert rq.depth("default") == {"wait": 1, "delayed": 0, "active": 2}
    assert rq.claim("default", 10).ids == [3]
    assert rq.claim("default", 10).ids == []


def test_claim_orders_by_priority_then_id(services: Services) -> None:
    rq = q(services)
    rq.push(
        [
            Ready(10, "default", 0),
            Ready(11, "default", 5),
            Ready(12, "default", 1000),
            Ready(13, "default", 5),
        ]
    )
    assert rq.claim("default", 10).ids == [12, 11, 13, 10]


def test_delayed_jobs_wait_until_due_and_report_when(services: Services) -> None:
    rq = q(services)
    due = datetime.now(UTC) + timedelta(milliseconds=300)
    rq.push([Ready(7, "default", 3, due), Ready(8, "default", 0)])
    first = rq.claim("default", 10)
    assert first.ids == [8]
    assert first.next_due_in_ms is not None and 0 < first.next_due_in_ms <= 300
    time.sleep(0.35)
    later = rq.claim("default", 10)
    assert later.ids == [7] and later.next_due_in_ms is None
    assert services.queue.redis.hlen(rq.keys("default").prio) == 0


def test_enqueue_ready_moves_a_delayed_job_out_of_delayed(services: Services) -> None:
    rq = q(services)
    rq.push([Ready(5, "default", 2, datetime.now(UTC) + timedelta(hours=1))])
    rq.push([Ready(5, "default", 2)])  # promoted
    assert rq.depth("default") == {"wait": 1, "delayed": 0, "active": 0}


def test_paused_queue_claims_nothing(services: Services) -> None:
    rq = q(services)
    rq.push([Ready(1, "default", 0)])
    rq.redis.set(rq.keys("default").paused, 1)
    assert rq.claim("default", 10).ids == []
    rq.redis.delete(rq.keys("default").paused)
    assert rq.claim("default", 10).ids == [1]


def test_ack_forgets_claimed_ids_and_stale_active_entries_expire(services: Services) -> None:
    rq = q(services)
    rq.push([Ready(i, "default", 0) for i in (1, 2)])
    rq.claim("default", 2)
    rq.ack("default", [1])
    assert rq.depth("default")["active"] == 1
    rq.claim("default", 1, stale_after_ms=0)  # anything claimed before now is dropped
    time.sleep(0.01)
    rq.claim("default", 1, stale_after_ms=0)
    assert rq.depth("default")["active"] == 0


def test_enqueue_signals_idle_runners(services: Services) -> None:
    rq = q(services)
    start = time.monotonic()
    rq.wait_for_work(["default"], 0.2)  # nothing pushed: waits the timeout
    assert time.monotonic() - start >= 0.15
    rq.push([Ready(1, "default", 0)])
    start = time.monotonic()
    rq.wait_for_work(["default"], 5)
    assert time.monotonic() - start < 1


def test_one_wake_up_token_is_passed_on_while_jobs_are_left(services: Services) -> None:
    rq = q(services)
    rq.push([Ready(i, "default", 0) for i in range(1, 11)])
    rq.push([Ready(i, "default", 0) for i in range(11, 21)])
    signal = rq.keys("default").signal
    assert rq.redis.llen(signal) == 1  # one idle runner looks, however many jobs came
    rq.take_signal(["default"])
    assert len(rq.claim("default", 15).ids) == 15  # five left: the next runner is woken
    assert rq.redis.llen(signal) == 1
    assert len(rq.claim("default", 15).ids) == 5  # none left: no stale wake-ups
    assert rq.redis.llen(signal) == 1
    rq.take_signal(["default"])
    rq.claim("default", 15)
    assert rq.redis.llen(signal) == 0


def test_a_suspect_job_is_claimed_alone_by_an_idle_runner(services: Services) -> None:
    rq = q(services)
    rq.push([Ready(1, "default", 0), Ready(2, "default", 0), Ready(9, "default", 0, suspect=True)])
    busy = rq.claim("default", 10, idle=False)
    assert (busy.ids, busy.suspect_waiting, busy.isolated) == ([], True, False)
    alone = rq.claim("default", 10, idle=True)
    assert (alone.ids, alone.isolated) == ([9], True)
    assert rq.claim("default", 10, idle=False).ids == [1, 2]  # no suspect left: normal again
