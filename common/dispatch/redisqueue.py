"""The Redis side of dispatch: ids only, never a second copy of a job's truth."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

from redis.crc import key_slot

from common import redisclient
from common.dispatch.keys import QueueKeys
from common.errors import DependencyDown
from common.records import Claimed, Ready


def _script(name: str) -> str:
    """A script of lua/, after the shared functions it may call (`_*.lua`)."""
    folder = resources.files("common.dispatch").joinpath("lua")
    shared = [f.read_text() for f in sorted(folder.iterdir(), key=str) if f.name.startswith("_")]
    return "\n".join([*shared, folder.joinpath(f"{name}.lua").read_text()])


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redisclient.DOWN_ERRORS as exc:
        raise DependencyDown("redis", exc) from exc


# On a cluster, a runner serving queues of several hash slots blocks on one slot's signals
# for this long at a time, and looks at the others' between slices (wait_for_work).
_SLICE_S = 0.05


class RedisQueue:
    """Enqueue, claim and ack job ids through the Lua scripts in common/dispatch/lua/; the
    Dispatcher and PollingDispatcher of common/dispatch/protocol.py."""

    keeps_delayed = True  # delayed ids wait in a sorted set until due, however far off

    def __init__(
        self, redis_url: str, prefix: str, socket_timeout_s: float = 5.0, cluster: bool = False
    ) -> None:
        self.prefix = prefix
        self.cluster = cluster
        self.redis = redisclient.connect(
            redis_url, cluster=cluster, socket_timeout_s=socket_timeout_s, connect_timeout_s=2.0
        )
        self._enqueue = redisclient.script(self.redis, _script("enqueue"))
        self._claim = redisclient.script(self.redis, _script("claim"))
        self._ack = redisclient.script(self.redis, _script("ack"))
        self._missing = redisclient.script(self.redis, _script("missing"))

    def keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.prefix, queue)

    def close(self) -> None:
        self.redis.close()

    def ping(self) -> None:
        with _redis_errors():
            self.redis.ping()

    def push(self, jobs: Iterable[Ready]) -> int:
        """Push jobs (any queues) in one pipelined round trip; return how many became ready."""
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for job in jobs:
            by_queue[job.queue] += [job.id, job.priority, job.due_ms, int(job.suspect)]
        # One EVALSHA per queue; usually there is one queue, and a pipeline would cost a
        # SCRIPT EXISTS round trip per call.
        made_ready = 0
        with _redis_errors():
            for queue, args in by_queue.items():
                k = self.keys(queue)
                keys = [k.wait, k.delayed, k.prio, k.signal, k.suspect]
                made_ready += int(self._enqueue(keys=keys, args=args))
        return made_ready

    def missing(self, jobs: Sequence[Ready]) -> list[Ready]:
        """The jobs Redis does not hold in line: lost pushes, or a flushed Redis."""
        by_queue: dict[str, list[Ready]] = defaultdict(list)
        for job in jobs:
            by_queue[job.queue].append(job)
        lost: set[tuple[str, int]] = set()
        with _redis_errors():
            for queue, queued in by_queue.items():
                k = self.keys(queue)
                ids = self._missing(
                    keys=[k.wait, k.suspect, k.delayed], args=[j.id for j in queued]
                )
                lost.update((queue, int(i)) for i in ids)
        return [job for job in jobs if (job.queue, job.id) in lost]

    def claim(
        self, queue: str, count: int, stale_after_ms: int = 600_000, idle: bool = True
    ) -> Claimed:
        """Pop up to `count` ready ids; `idle` says the runner has nothing in flight."""
        k = self.keys(queue)
        keys = [k.wait, k.delayed, k.prio, k.active, k.paused, k.suspect, k.signal]
        with _redis_errors():
            out = self._claim(keys=keys, args=[count, stale_after_ms, int(idle)])
        now, next_due, mode = int(out[0]), int(out[1]), int(out[2])
        return Claimed(
            ids=[int(i) for i in out[3:]],
            next_due_in_ms=None if next_due < 0 else max(0, next_due - now),
            isolated=mode == 1,
            suspect_waiting=mode == 2,
        )

    def ack(self, queue: str, ids: Sequence[int]) -> None:
        if ids:
            with _redis_errors():
                self._ack(keys=[self.keys(queue).active], args=list(ids))

    def forget(self, queue: str, ids: Sequence[int]) -> None:
        """Drop ids from a queue's wait and delayed sets (cancelled or removed jobs)."""
        if not ids:
            return
        k = self.keys(queue)
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(k.wait, *ids)
            pipe.zrem(k.delayed, *ids)
            pipe.zrem(k.suspect, *ids)
            pipe.hdel(k.prio, *[str(i) for i in ids])
            pipe.execute()

    def set_paused(self, queue: str, paused: bool) -> None:
        k = self.keys(queue)
        with _redis_errors():
            if paused:
                self.redis.set(k.paused, 1)
            else:
                self.redis.delete(k.paused)
                self.redis.lpush(k.signal, 1)  # wake idle runners

    def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> None:
        """Block until an enqueue signals one of these queues, or the timeout passes."""
        signals = [self.keys(q).signal for q in queues]
        with _redis_errors():
            if self.cluster:
                self._wait_across_slots(signals, timeout_s)
            else:
                self.redis.blpop(signals, timeout=max(timeout_s, 0.001))

    def _wait_across_slots(self, signals: Sequence[str], timeout_s: float) -> None:
        """wait_for_work on a cluster, where one BLPOP may only name keys of one hash slot.
        One slot: one BLPOP, as on a single node. Several: BLPOP one slot's signals for a
        slice at a time (a different slot each slice) and, before each slice, pop the
        others' in one pipeline (one round trip per node, sent together)."""
        by_slot: dict[int, list[str]] = defaultdict(list)
        for signal in signals:
            by_slot[key_slot(signal.encode())].append(signal)
        groups = list(by_slot.values())
        if len(groups) == 1:
            self.redis.blpop(groups[0], timeout=max(timeout_s, 0.001))
            return
        deadline = time.monotonic() + timeout_s
        for turn in itertools.count():
            if self._take_one(signals):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            group = groups[turn % len(groups)]
            if self.redis.blpop(group, timeout=max(min(left, _SLICE_S), 0.001)) is not None:
                return

    def _take_one(self, signals: Sequence[str]) -> bool:
        """Pop the signals in one pipeline; keep one token and put back the rest, so a
        wake-up for another queue still wakes another runner (as one BLPOP takes one)."""
        pipe = self.redis.pipeline(transaction=False)
        for signal in signals:
            pipe.lpop(signal)
        taken = [s for s, token in zip(signals, pipe.execute(), strict=True) if token is not None]
        if len(taken) > 1:
            pipe = self.redis.pipeline(transaction=False)
            for signal in taken[1:]:
                pipe.lpush(signal, 1)
            pipe.execute()
        return bool(taken)

    def take_signal(self, queues: Sequence[str]) -> bool:
        """Non-blocking: was new work signalled for one of these queues?"""
        with _redis_errors():
            return any(self.redis.lpop(self.keys(q).signal) is not None for q in queues)

    def depth(self, queue: str) -> dict[str, int]:
        """What Redis holds for a queue: ids waiting, delayed and claimed."""
        k = self.keys(queue)
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(k.wait)
            pipe.zcard(k.delayed)
            pipe.zcard(k.active)
            pipe.zcard(k.suspect)
            wait, delayed, active, suspect = pipe.execute()
        depth = {"wait": int(wait), "delayed": int(delayed), "active": int(active)}
        if suspect:
            depth["suspect"] = int(suspect)
        return depth
