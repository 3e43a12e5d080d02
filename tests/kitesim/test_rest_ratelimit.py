"""Kite's per-api_key rate limits on an injected clock (pure, no server)."""

import pytest

from kitesim.rest.ratelimit import KITE_LIMITS, RateLimiter, Window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def allowed(limiter: RateLimiter, key: str, bucket: str, count: int) -> list[bool]:
    return [limiter.allow(key, bucket) for _ in range(count)]


@pytest.mark.parametrize(("bucket", "per_second"), [("quote", 1), ("historical", 3), ("order", 10), ("default", 10)])
def test_per_second_limits_are_kites(clock: FakeClock, bucket: str, per_second: int) -> None:
    limiter = RateLimiter(monotonic=clock)
    assert allowed(limiter, "k", bucket, per_second + 1) == [True] * per_second + [False]
    clock.now += 1.0
    assert limiter.allow("k", bucket)


def test_window_slides_rather_than_resetting_on_the_second(clock: FakeClock) -> None:
    limiter = RateLimiter(monotonic=clock)
    assert allowed(limiter, "k", "historical", 2) == [True, True]
    clock.now += 0.6
    assert allowed(limiter, "k", "historical", 2) == [True, False]
    clock.now += 0.5  # the first two are now more than a second old
    assert allowed(limiter, "k", "historical", 3) == [True, True, False]


def test_refused_requests_do_not_count(clock: FakeClock) -> None:
    limiter = RateLimiter(monotonic=clock)
    assert limiter.allow("k", "quote")
    for _ in range(5):
        clock.now += 0.1
        assert not limiter.allow("k", "quote")
    clock.now += 0.5
    assert limiter.allow("k", "quote")


def test_keys_and_buckets_are_independent(clock: FakeClock) -> None:
    limiter = RateLimiter(monotonic=clock)
    assert limiter.allow("a", "quote")
    assert limiter.allow("b", "quote")
    assert limiter.allow("a", "historical")
    assert limiter.allow("a", "default")
    assert not limiter.allow("a", "quote")


def test_orders_are_capped_at_400_a_minute(clock: FakeClock) -> None:
    limiter = RateLimiter(monotonic=clock)
    for _ in range(40):
        assert allowed(limiter, "k", "order", 10) == [True] * 10
        clock.now += 1.0
    assert not limiter.allow("k", "order")
    clock.now += 20.0  # the first second's ten orders leave the minute window
    assert allowed(limiter, "k", "order", 11) == [True] * 10 + [False]


def test_orders_are_capped_at_5000_a_day() -> None:
    clock = FakeClock()
    limits = {"order": (Window(10_000, 1.0), Window(10_000, 60.0), KITE_LIMITS["order"][2])}
    limiter = RateLimiter(limits, monotonic=clock)
    assert all(allowed(limiter, "k", "order", 5000))
    assert not limiter.allow("k", "order")
    clock.now += 86_400.0
    assert limiter.allow("k", "order")
