"""Dispatch: how a stored job reaches a runner. Redis holds ids only, never a job's truth."""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.dispatch.protocol import Dispatcher, PollingDispatcher
from common.dispatch.redisqueue import RedisQueue

if TYPE_CHECKING:
    from common.settings import Settings

__all__ = ["Dispatcher", "PollingDispatcher", "RedisQueue", "connect"]


def connect(settings: Settings) -> Dispatcher:
    """The dispatcher DJS_DISPATCH names; neither blocks if its service is down."""
    if settings.dispatch == "sqs":
        # Imported here: boto3 costs every Redis-dispatched process a third of a second.
        from common.dispatch.sqs import SqsDispatcher

        return SqsDispatcher(settings.sqs_queue_urls)
    return RedisQueue(settings.redis_url, settings.redis_prefix, cluster=settings.redis_cluster)
