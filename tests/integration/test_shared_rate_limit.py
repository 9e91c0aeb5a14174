"""The token bucket in Redis: two limiters (two API processes) draw from one bucket per key."""

from __future__ import annotations

import asyncio

import pytest

from service.http.rate_limit import RateLimiter, SharedRateLimiter, rate_limiter_for
from tests.support.services import fresh_redis_url

pytestmark = pytest.mark.integration
REDIS_DB = 12


def _granted(limiters: list[RateLimiter], key: str, requests: int) -> int:
    async def run() -> int:
        granted = 0
        for i in range(requests):  # alternate between the "processes", as a load balancer would
            granted += (await limiters[i % len(limiters)].acquire_async(key)) == 0
        for limiter in limiters:
            await limiter.close()
        return granted

    return asyncio.run(run())


def test_two_processes_share_one_bucket_per_key() -> None:
    url = fresh_redis_url(REDIS_DB)
    # refill of one token per 100 s: the test sees exactly the burst, however slow the machine
    limiters = [SharedRateLimiter(0.01, 5, url) for _ in range(2)]
    assert _granted(limiters, "key-a", 20) == 5
    # another key has its own bucket
    assert _granted([SharedRateLimiter(0.01, 5, url) for _ in range(2)], "key-b", 7) == 5


def test_the_bucket_refills_at_the_rate() -> None:
    url = fresh_redis_url(REDIS_DB)
    limiter = SharedRateLimiter(1000.0, 1, url)

    async def run() -> list[float]:
        waits = [await limiter.acquire_async("k"), await limiter.acquire_async("k")]
        await asyncio.sleep(0.05)  # 50 tokens' worth at 1000/s; the bucket holds 1
        waits.append(await limiter.acquire_async("k"))
        await limiter.close()
        return waits

    first, second, after_refill = asyncio.run(run())
    assert first == 0 and 0 < second <= 0.001 and after_refill == 0


def test_without_redis_each_process_keeps_its_own_bucket() -> None:
    # nothing listens on port 1: the shared limiter falls back to its in-process bucket
    limiter = SharedRateLimiter(0.01, 3, "redis://127.0.0.1:1/0")
    assert _granted([limiter], "k", 10) == 3


def test_the_embedded_default_uses_the_in_process_bucket() -> None:
    assert type(rate_limiter_for(1.0, 1, None)) is RateLimiter
