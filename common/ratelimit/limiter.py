"""The local side of rate limiting: each API process spends tokens it took from Redis in chunks.

A round trip to Redis per request would cost the hot path a few hundred microseconds. Instead
a process takes up to a chunk of tokens at once (about `chunk_s` of the key's rate) and spends
them locally; it goes back to Redis when its stock is spent or older than `max_age_s`. Tokens
leave the shared bucket when they are granted, so the sum over every process never exceeds the
bucket: a process may hold one chunk unspent, which only lowers what the others can take. A
refusal is kept locally too, until the bucket has a token again: a flooding key costs Redis one
round trip per refill, not one per request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import DependencyDown
from common.ratelimit.bucket import TokenBuckets

# The most tokens one process takes at once, whatever the rate.
_MAX_CHUNK = 1000


@dataclass
class _Stock:
    """One key's tokens in this process."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: int = 0
    taken_at: float = -math.inf
    refused_until: float = -math.inf


class RateLimiter:
    """Admits or refuses each request of an API key against its token bucket."""

    def __init__(
        self,
        buckets: TokenBuckets,
        burst_s: float = 2.0,
        chunk_s: float = 0.05,
        max_age_s: float = 1.0,
        down_for_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buckets = buckets
        self.burst_s, self.chunk_s, self.max_age_s = burst_s, chunk_s, max_age_s
        self.down_for_s = down_for_s
        self.clock = clock
        self._stocks: dict[int, _Stock] = {}
        self._lock = threading.Lock()
        # After Redis failed to answer, every key is decided without asking it, for a moment.
        self._down_until = -math.inf

    def capacity(self, rate: float) -> float:
        """The bucket's size: `burst_s` seconds of the rate, at least one request."""
        return max(1.0, rate * self.burst_s)

    def admit(self, key_id: int, rate: float) -> float:
        """0 if the key may make this request now, else the seconds until it may.

        Raises DependencyDown when the key has no local stock and Redis does not answer."""
        stock = self._stock(key_id)
        with stock.lock:  # per key: one key's refill never waits for another's
            now = self.clock()
            if stock.tokens > 0 and now - stock.taken_at < self.max_age_s:
                stock.tokens -= 1
                return 0.0
            if now < stock.refused_until:
                return stock.refused_until - now
            self._refill(stock, key_id, rate, now)
            if stock.tokens > 0:
                stock.tokens -= 1
                return 0.0
            return stock.refused_until - now

    def _stock(self, key_id: int) -> _Stock:
        stock = self._stocks.get(key_id)
        if stock is None:
            with self._lock:
                stock = self._stocks.setdefault(key_id, _Stock())
        return stock

    def _refill(self, stock: _Stock, key_id: int, rate: float, now: float) -> None:
        if now < self._down_until:
            raise DependencyDown("redis")
        capacity = self.capacity(rate)
        wanted = max(1, min(_MAX_CHUNK, int(capacity), round(rate * self.chunk_s)))
        try:
            grant = self.buckets.take(key_id, rate, capacity, wanted)
        except DependencyDown:
            self._down_until = self.clock() + self.down_for_s
            raise
        stock.tokens, stock.taken_at = grant.tokens, now
        stock.refused_until = now + grant.wait_s if grant.tokens == 0 else -math.inf

    def close(self) -> None:
        self.buckets.close()
