"""Dispatch: how a stored job reaches a runner. Redis holds ids only, never a job's truth."""

from common.dispatch.protocol import Dispatcher, PollingDispatcher
from common.dispatch.redisqueue import RedisQueue

__all__ = ["Dispatcher", "PollingDispatcher", "RedisQueue"]
