"""What the job manager needs from a dispatcher. RedisQueue implements both protocols; a
cloud dispatcher (SQS, whose consumers are Lambda functions) implements Dispatcher alone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from common.records import Claimed, Ready


@runtime_checkable
class Dispatcher(Protocol):
    """Tells consumers which stored jobs are ready; never the system of record."""

    def push(self, jobs: Iterable[Ready]) -> int:
        """Put jobs in line (now or at their due time); idempotent. Return how many became
        ready now."""
        ...

    def forget(self, queue: str, ids: Sequence[int]) -> None:
        """Take ids out of line (cancelled or removed jobs); best effort."""
        ...

    def missing(self, jobs: Sequence[Ready]) -> list[Ready]:
        """What is in line: of these jobs, those the dispatcher does not hold."""
        ...

    def set_paused(self, queue: str, paused: bool) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PollingDispatcher(Dispatcher, Protocol):
    """A dispatcher that local runners poll: claim ids, acknowledge them, wait for work."""

    def claim(self, queue: str, count: int, idle: bool = True) -> Claimed: ...

    def ack(self, queue: str, ids: Sequence[int]) -> None: ...

    def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> None: ...

    def take_signal(self, queues: Sequence[str]) -> bool: ...

    def depth(self, queue: str) -> dict[str, int]: ...
