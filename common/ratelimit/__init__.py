"""Rate limits per API key: a token bucket per key in Redis, spent in chunks by each process."""

from common.ratelimit.bucket import Grant, TokenBuckets
from common.ratelimit.limiter import RateLimiter

__all__ = ["Grant", "RateLimiter", "TokenBuckets"]
