"""Request rate per API key: a token bucket per key, in this process or shared in Redis.

* Embedded default (filesystem broker): one bucket per key per process, no network at all.
* With a Redis broker (or ``LIPSPLINE_RATE_LIMIT_REDIS_URL``), the bucket lives in Redis and
  every API process draws from the same one, so N replicas enforce one limit, not N times
  it. A request costs one round trip on a pooled connection: an atomic Lua script refills
  the bucket by the time elapsed on the *Redis* clock (API hosts' clocks may disagree),
  takes a token if there is one, and answers the wait otherwise. Buckets are keyed by the
  key's id, never the key, and expire once they would be full again.

When Redis does not answer, the shared limiter falls back to this process's own bucket
(fail-open to the per-process limit, not to no limit): predictions of loaded models keep
working through a Redis outage, as they do through a database outage, while each process
still bounds each key. The fallback is logged once per outage, and Redis is tried again
after ``RETRY_AFTER_FAILURE_S``, so an outage does not add a connect timeout to every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """0 if the request may go ahead, else the seconds to wait before retrying."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    async def acquire_async(self, key: str) -> float:
        """:meth:`acquire` for the async auth dependency (no I/O: answered on the event loop)."""
        return self.acquire(key)

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))


#: KEYS[1] bucket; ARGV rate per second, burst. Returns the wait in seconds ("0" when a token was taken).
TOKEN_BUCKET_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate) * 1000) + 1000)
return tostring(wait)
"""
BUCKET_PREFIX = "lipspline:ratelimit:"
#: after Redis fails, requests use the local bucket for this long before Redis is tried again
RETRY_AFTER_FAILURE_S = 2.0


class SharedRateLimiter(RateLimiter):
    """The token bucket in Redis, shared by every API process (see the module docstring)."""

    def __init__(self, rate_per_s: float, burst: int, redis_url: str, timeout_s: float = 0.25) -> None:
        super().__init__(rate_per_s, burst)
        import redis.asyncio as redis_asyncio

        self.redis_url = redis_url
        self._client = redis_asyncio.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, max_connections=64
        )
        self._script = self._client.register_script(TOKEN_BUCKET_LUA)
        self._args = (repr(float(rate_per_s)), str(int(burst)))
        self._down_until = 0.0

    async def acquire_async(self, key: str) -> float:
        if time.monotonic() < self._down_until:
            return self.acquire(key)
        try:
            wait = await self._script(keys=[BUCKET_PREFIX + key], args=self._args)
        except Exception as exc:  # Redis unreachable or slow: this process's own bucket, for a while
            if self._down_until == 0.0:
                log.warning("shared rate limit: Redis unavailable (%s); using per-process buckets",
                            type(exc).__name__)
            self._down_until = time.monotonic() + RETRY_AFTER_FAILURE_S
            return self.acquire(key)
        if self._down_until:
            log.info("shared rate limit: Redis is back")
            self._down_until = 0.0
        return float(wait)

    async def close(self) -> None:
        await self._client.aclose()


def rate_limiter_for(rate_per_s: float, burst: int, redis_url: str | None) -> RateLimiter:
    """The shared limiter when a Redis URL is configured, else the in-process one."""
    if redis_url is None:
        return RateLimiter(rate_per_s, burst)
    return SharedRateLimiter(rate_per_s, burst, redis_url)
