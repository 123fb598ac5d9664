"""The one place djs makes a Redis client: a single node, or a Redis Cluster (ElastiCache
cluster mode) when DJS_REDIS_CLUSTER is on.

Every command and script djs sends names keys of one hash tag only (a queue's keys, or one
rate-limit bucket: common/dispatch/keys.py, common/ratelimit/bucket.py), so each call goes to
the one node that holds its slot; the cluster client follows MOVED and ASK there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import ClusterDownError, RedisClusterException

Client = redis.Redis | RedisCluster

# What "Redis does not answer" looks like: a cluster client also raises these when no node
# it knows answers, or while the cluster has no master for a slot.
DOWN_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    RedisClusterException,
    ClusterDownError,
)


class _LazyCluster:
    """A RedisCluster made on first use. RedisCluster asks a node for the slot map when it is
    constructed and raises if none answers; djs's clients must be constructible while Redis
    is down (Services.connect), so construction waits for the first command."""

    def __init__(self, make: Callable[[], RedisCluster]) -> None:
        self._make = make
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def _open(self) -> RedisCluster:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client or self._open(), name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def connect(
    url: str, *, cluster: bool, socket_timeout_s: float, connect_timeout_s: float
) -> Client:
    """A client for `url`; neither kind connects before its first command."""
    if not cluster:
        return redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s
        )

    def make() -> RedisCluster:
        return RedisCluster.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s
        )

    return cast(RedisCluster, _LazyCluster(make))


def script(client: Client, text: str) -> Script:
    """A Lua script bound to `client`: register_script, but given bytes, so that making it
    asks the client for no encoder (which would connect a cluster client)."""
    return Script(client, text.encode())
