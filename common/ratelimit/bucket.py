"""The shared side of rate limiting: one token bucket per API key in Redis (take.lua)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from common import redisclient
from common.errors import DependencyDown

# Short: a Redis that does not answer must not hold a request for seconds; the limiter then
# decides by role (common/ratelimit/limiter.py) and does not ask again for a moment.
_TIMEOUT_S = 0.25


@dataclass(frozen=True)
class Grant:
    tokens: int  # how many requests the caller may now make
    wait_s: float  # when none were granted: how long until one is there


def bucket_key(prefix: str, key_id: int) -> str:
    """`<prefix>:{ratelimit:<key id>}`: one key, its own hash tag (Redis Cluster)."""
    return f"{prefix}:{{ratelimit:{key_id}}}"


class TokenBuckets:
    """Takes tokens from the bucket of an API key, several at once (common/ratelimit/take.lua)."""

    def __init__(
        self, redis_url: str, prefix: str, timeout_s: float = _TIMEOUT_S, cluster: bool = False
    ) -> None:
        self.prefix = prefix
        self.redis = redisclient.connect(
            redis_url, cluster=cluster, socket_timeout_s=timeout_s, connect_timeout_s=timeout_s
        )
        text = resources.files("common.ratelimit").joinpath("take.lua").read_text()
        self._take = redisclient.script(self.redis, text)

    def take(self, key_id: int, rate: float, capacity: float, wanted: int) -> Grant:
        """Refill the key's bucket at `rate` per second up to `capacity`, then take up to
        `wanted` tokens; DependencyDown if Redis does not answer."""
        try:
            granted, wait_ms = self._take(
                keys=[bucket_key(self.prefix, key_id)], args=[rate, capacity, wanted]
            )
        except redisclient.DOWN_ERRORS as exc:
            raise DependencyDown("redis", exc) from exc
        return Grant(int(granted), int(wait_ms) / 1000)

    def close(self) -> None:
        self.redis.close()
