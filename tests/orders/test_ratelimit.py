import threading
import time

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from orders.ratelimit import Limit, TokenBucket, order_bucket, parse_limits

KITE_ORDERS = (Limit(10, 1.0), Limit(400, 60.0), Limit(5000, 86_400.0))


def test_a_bucket_allows_its_burst_then_paces_at_its_rate(redis_client: redis.Redis) -> None:
    bucket = TokenBucket(redis_client, "kite:ratelimit:test:order", [Limit(10, 1.0)], safety=0.8)

    assert [bucket.take() for _ in range(2)] == [0.0, 0.0]  # capacity (1 - 0.8) * 10
    wait = bucket.take()
    assert 0.05 < wait <= 0.125  # one token per 1 / (0.8 * 10) s
    time.sleep(wait)
    assert bucket.take() == 0.0


def test_every_window_stays_within_kites_limits_across_the_fleet(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """Three "workers", each with its own Redis connection, hammer one api_key for 2.5 s."""
    sent: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 2.5

    def worker() -> None:
        bucket = TokenBucket(redis.Redis.from_url(redis_url), "kite:ratelimit:fleet:order", KITE_ORDERS, 0.8)
        while time.monotonic() < stop:
            if bucket.acquire(max_wait=0.5) == 0.0:
                with lock:
                    sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent.sort()
    busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert busiest <= 10
    assert len(sent) >= 15  # 2 at once, then 8/s (22 in 2.5 s): the limiter paces, it does not starve


def test_the_per_minute_limit_holds_when_the_per_second_one_would_allow(redis_client: redis.Redis) -> None:
    bucket = TokenBucket(redis_client, "kite:ratelimit:minute:order", [Limit(10, 1.0), Limit(5, 60.0)], 0.8)

    assert bucket.take() == 0.0  # the minute bucket's capacity is 1
    assert bucket.take() > 10  # 4 a minute refill: 15 s to the next token
    assert bucket.acquire(max_wait=0.2) > 10  # gives up at once instead of sleeping past max_wait


def test_buckets_are_keyed_by_a_digest_never_the_api_key(redis_client: redis.Redis, settings) -> None:
    order_bucket(redis_client, "demo-api-key").take()

    keys = [key.decode() for key in redis_client.keys("kite:ratelimit:*")]
    assert len(keys) == 1 and "demo-api-key" not in keys[0]
    assert redis_client.pttl(keys[0]) > 0  # idle buckets expire once they would be full again


@pytest.mark.parametrize("values", [["10"], ["ten/1"], ["0/1"], ["10/0"], []])
def test_malformed_limits_stop_start_up_naming_the_setting(values: list[str]) -> None:
    with pytest.raises(ImproperlyConfigured, match="ORDER_RATE_LIMITS"):
        parse_limits(values, "ORDER_RATE_LIMITS")


def test_kites_default_limits_parse() -> None:
    assert parse_limits(["10/1", "400/60", "5000/86400"], "X") == KITE_ORDERS
