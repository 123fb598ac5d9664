"""Every Redis key djs uses. A queue's keys share one hash tag so they work on Redis Cluster."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue: `<prefix>:{<queue>}:<name>`."""

    prefix: str
    queue: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{{{self.queue}}}:{name}"

    @property
    def wait(self) -> str:
        """ZSET of ready job ids, scored by priority then id (see lua/enqueue.lua)."""
        return self._key("wait")

    @property
    def delayed(self) -> str:
        """ZSET of delayed job ids, scored by due time in ms."""
        return self._key("delayed")

    @property
    def prio(self) -> str:
        """HASH id -> priority, only for delayed jobs with a non-zero priority."""
        return self._key("prio")

    @property
    def suspect(self) -> str:
        """ZSET of jobs whose runners kept dying running them, scored like wait; each runs
        alone."""
        return self._key("suspect")

    @property
    def active(self) -> str:
        """ZSET of claimed ids, scored by claim time in ms; removed by ack."""
        return self._key("active")

    @property
    def signal(self) -> str:
        """LIST of wake-up tokens that idle runners block on."""
        return self._key("signal")

    @property
    def paused(self) -> str:
        """Exists while the queue is paused."""
        return self._key("paused")
