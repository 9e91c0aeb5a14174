"""service/http/rate_limit.py: a token bucket per key, on a fake clock (deterministic)."""

from __future__ import annotations

import threading

import pytest

import service.http.rate_limit as rate_limit
from service.http.rate_limit import RateLimiter


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(rate_limit.time, "monotonic", fake)
    return fake


def test_a_burst_then_a_wait_of_one_token(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=3)
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)  # one token at 2/s
    assert limiter.acquire("k") == pytest.approx(0.5)  # a refusal spends nothing


def test_tokens_refill_at_the_rate(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=3)
    for _ in range(3):
        limiter.acquire("k")
    clock.now += 0.25  # half a token
    assert limiter.acquire("k") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == pytest.approx(0.5)


def test_waiting_the_answered_time_is_enough(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_s=0.3, burst=1)
    assert limiter.acquire("k") == 0.0
    wait = limiter.acquire("k")
    assert wait == pytest.approx(1 / 0.3)
    clock.now += wait
    assert limiter.acquire("k") == 0.0


def test_the_bucket_never_holds_more_than_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_s=100.0, burst=5)
    limiter.acquire("k")
    clock.now += 3600  # an hour idle
    assert [limiter.acquire("k") for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("k") > 0


def test_keys_are_independent(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=2)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert [limiter.acquire("b") for _ in range(2)] == [0.0, 0.0]


def test_concurrent_requests_get_exactly_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=25)
    results: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def hit() -> None:
        start.wait()
        wait = limiter.acquire("shared")
        with lock:
            results.append(wait)

    threads = [threading.Thread(target=hit) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(0.0) == 25 and len(results) == 50


@pytest.mark.parametrize(("wait", "header"), [(0.0001, "1"), (0.5, "1"), (1.0, "1"), (1.01, "2"), (9.99, "10"),
                                              (10.0, "10")])
def test_retry_after_is_whole_seconds_rounded_up_at_least_one(wait: float, header: str) -> None:
    assert RateLimiter.retry_after_header(wait) == header


def test_real_clock_refills() -> None:
    limiter = RateLimiter(rate_per_s=1000.0, burst=1)
    assert limiter.acquire("k") == 0.0
    wait = limiter.acquire("k")
    assert 0 < wait <= 0.001
    threading.Event().wait(wait + 0.01)
    assert limiter.acquire("k") == 0.0
