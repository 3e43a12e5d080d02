"""A circuit breaker per broker account, shared by every process through Redis.

closed ──N consecutive failures──► open ──reset period over──► half-open (one caller probes Kite)
  ▲                                  ▲                               │
  └────────────── success ───────────┴────────── failure ────────────┘

A failure is a call whose outcome is unknown (timeout, reset, 5xx): Kite is down or struggling.
Kite's answers (a rejection, a 429, a refused token) show it is up and count as successes;
429s belong to the rate limiter, not the breaker. While the breaker is open, orders wait in PENDING.
"""

from dataclasses import dataclass

import redis
from django.conf import settings

_ALLOW = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then
  return 0
end
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if now < until_ms then
  return until_ms - now
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'until', tostring(now + tonumber(ARGV[1])))
return 0
"""

_FAIL = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[1])) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', tostring(now + tonumber(ARGV[2])))
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class BreakerState:
    state: str  # closed | open | half_open
    failures: int
    opened: int  # how many times it has opened, ever (for tests and dashboards)
    open_until: float  # epoch seconds (Redis's clock) the open period ends; 0 once closed

    def blocking(self, now: float) -> bool:
        """Open and within its period: calls to Kite wait. An open breaker past its period blocks
        nothing: the next call probes Kite (``allow`` turns it half-open), so with no orders it may
        stay stored as open for hours while Kite is fine."""
        return self.state == "open" and now < self.open_until


class CircuitBreaker:
    def __init__(self, client: redis.Redis, account_id: int) -> None:
        self._client = client
        self._key = f"kite:breaker:{account_id}"
        self._allow = client.register_script(_ALLOW)
        self._fail = client.register_script(_FAIL)

    def allow(self) -> float:
        """0.0 when a call may go to Kite now, else the seconds until the breaker lets one through.

        After the open period the first caller becomes the half-open probe; the others keep waiting
        until it reports, or until the probe window (one Kite timeout and a margin) lapses.
        """
        probe_ms = int((settings.KITE_HTTP_TIMEOUT + settings.ORDER_LEASE_MARGIN_S) * 1000)
        return int(self._allow(keys=[self._key], args=[probe_ms])) / 1000

    def record_success(self) -> None:
        self._client.hset(self._key, mapping={"state": "closed", "failures": 0})

    def record_failure(self) -> bool:
        """Count an unknown outcome; True when this failure opened the breaker."""
        reset_ms = int(settings.ORDER_BREAKER_RESET_S * 1000)
        return bool(self._fail(keys=[self._key], args=[settings.ORDER_BREAKER_FAILURES, reset_ms]))

    def state(self) -> BreakerState:
        raw = {key.decode(): value.decode() for key, value in self._client.hgetall(self._key).items()}
        return BreakerState(
            state=raw.get("state", "closed"),
            failures=int(raw.get("failures", 0)),
            opened=int(raw.get("opened", 0)),
            open_until=int(raw.get("until", 0)) / 1000,
        )
