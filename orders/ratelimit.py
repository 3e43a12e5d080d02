"""Kite's per-api_key limits, shared by every worker and web process: token buckets in Redis.

Kite counts requests in sliding windows (10 orders a second, 400 a minute, 5000 a day). A token bucket
with capacity ``c`` refilled at ``r``/s lets through at most ``c + r·T`` requests in any window ``T``,
so each limit ``n`` per ``T`` becomes a bucket with ``r = safety·n/T`` and ``c = (1 - safety)·n``: never
more than ``n`` per window, with head-room for network jitter between our clock and Kite's.

All of an api_key's buckets are taken in one Lua script (atomic across the fleet) on Redis's clock.
A lost reply that redis-py re-sends takes a second token: that errs on the slow side, never over the limit.
"""

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_TAKE = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + tonumber(now_t[2]) / 1000
local n = #ARGV / 2
local levels = {}
local wait = 0
local keep = 0
for i = 1, n do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local level = tonumber(redis.call('HGET', KEYS[1], 'level' .. i))
  local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp' .. i))
  if level == nil or stamp == nil then
    level = capacity
    stamp = now
  end
  level = math.min(capacity, level + (now - stamp) * rate)
  levels[i] = level
  if level < 1 then
    wait = math.max(wait, (1 - level) / rate)
  end
  keep = math.max(keep, capacity / rate)
end
if wait > 0 then
  return tostring(wait)
end
for i = 1, n do
  redis.call('HSET', KEYS[1], 'level' .. i, tostring(levels[i] - 1), 'stamp' .. i, tostring(now))
end
redis.call('PEXPIRE', KEYS[1], math.ceil(keep) + 1000)
return '0'
"""


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    seconds: float


def parse_limits(values: Sequence[str], name: str) -> tuple[Limit, ...]:
    """``["10/1", "400/60"]`` -> limits; a malformed value stops start-up naming the setting."""
    limits = []
    for value in values:
        count, _, seconds = value.partition("/")
        try:
            limit = Limit(int(count), float(seconds))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {value!r} is not COUNT/SECONDS") from None
        if limit.count < 1 or limit.seconds <= 0:
            raise ImproperlyConfigured(f"{name}: {value!r} must be a positive count per positive seconds")
        limits.append(limit)
    if not limits:
        raise ImproperlyConfigured(f"{name} lists no limits")
    return tuple(limits)


class TokenBucket:
    """``take()`` returns 0.0 when a request may go now, else the seconds until one may."""

    def __init__(self, client: redis.Redis, key: str, limits: Sequence[Limit], safety: float) -> None:
        if not 0 < safety < 1:
            raise ImproperlyConfigured(f"ORDER_RATE_SAFETY must be between 0 and 1, got {safety}")
        self._client = client
        self._key = key
        self._args: list[float] = []
        for limit in limits:
            rate_per_ms = safety * limit.count / (limit.seconds * 1000)
            self._args += [max(1.0, (1 - safety) * limit.count), rate_per_ms]
        self._script = client.register_script(_TAKE)

    def take(self) -> float:
        wait_ms = float(self._script(keys=[self._key], args=self._args))
        return wait_ms / 1000

    def acquire(self, max_wait: float) -> float:
        """Take a token, sleeping up to ``max_wait`` seconds for one; the remaining wait when none came."""
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.take()
            if wait == 0:
                return 0.0
            if time.monotonic() + wait > deadline:
                return wait
            time.sleep(wait)


def _key(api_key: str, bucket: str) -> str:
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]  # never the api_key itself in Redis
    return f"kite:ratelimit:{digest}:{bucket}"


def order_bucket(client: redis.Redis, api_key: str) -> TokenBucket:
    """Order placement: 10/s, 400/min, 5000/day per api_key (ORDER_RATE_LIMITS)."""
    limits = parse_limits(settings.ORDER_RATE_LIMITS, "ORDER_RATE_LIMITS")
    return TokenBucket(client, _key(api_key, "order"), limits, settings.ORDER_RATE_SAFETY)


def request_bucket(client: redis.Redis, api_key: str) -> TokenBucket:
    """Every other call (order book, positions, modify, cancel): 10/s per api_key (ORDER_REQUEST_RATE_LIMITS)."""
    limits = parse_limits(settings.ORDER_REQUEST_RATE_LIMITS, "ORDER_REQUEST_RATE_LIMITS")
    return TokenBucket(client, _key(api_key, "request"), limits, settings.ORDER_RATE_SAFETY)


def historical_bucket(client: redis.Redis, api_key: str) -> TokenBucket:
    """Historical candles: 3/s per api_key (BARS_HISTORICAL_RATE_LIMITS), shared by backfill, gap fill and settle."""
    limits = parse_limits(settings.BARS_HISTORICAL_RATE_LIMITS, "BARS_HISTORICAL_RATE_LIMITS")
    return TokenBucket(client, _key(api_key, "historical"), limits, settings.ORDER_RATE_SAFETY)
