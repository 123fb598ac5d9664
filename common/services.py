"""The objects every entry point needs, built once from Settings and passed on."""

from __future__ import annotations

from dataclasses import dataclass

from common.batcher import SubmitBatcher
from common.redisqueue import RedisQueue
from common.settings import Settings
from common.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    queue: RedisQueue
    _batcher: SubmitBatcher | None = None

    @property
    def batcher(self) -> SubmitBatcher:
        """Group commit for the API's submissions, started on first use."""
        if self._batcher is None:
            self._batcher = SubmitBatcher(self.store, self.queue)
        return self._batcher

    @classmethod
    def connect(cls, settings: Settings) -> Services:
        """Build the pool and the Redis client; neither blocks if its server is down."""
        store = Store(settings.database_url, settings.db_pool_min, settings.db_pool_max).open()
        queue = RedisQueue(settings.redis_url, settings.redis_prefix)
        return cls(settings, store, queue)

    def close(self) -> None:
        self.store.close()
        self.queue.close()
