"""The orders' Redis client (rate-limit buckets, circuit breakers, the positions cache)."""

import functools

import redis
from django.conf import settings


@functools.cache
def _client(url: str) -> redis.Redis:
    # Explicit timeouts: a Redis that stops answering must fail an order call fast, not hang it.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)


def orders_redis() -> redis.Redis:
    return _client(settings.REDIS_URL)
