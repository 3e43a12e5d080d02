"""/readyz: is every part of the fleet doing its job (README "Health and readiness").

Beat and the workers prove themselves by heartbeats in Redis: a timestamp (host clock: a heartbeat is a
lease, not market time) under a key that expires with it. Feeds prove themselves by their lease and the
last frame time they report. The checks are pure; ``readiness_evaluate`` reads Redis, the database and
the clocks for them, once for /readyz and once per Prometheus scrape (``ticker_ready``), so the two
never disagree.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from ticks.clocks import market_now
from ticks.exchange_calendar import market_calendar
from ticks.models import BrokerAccount
from workers.selectors import FeedStatus, feed_status_list
from workers.services import redis_client

BEAT_KEY = "heartbeat:beat"
HEARTBEAT_TASK = "ops.heartbeat"


def worker_key(queue: str, hostname: str) -> str:
    return f"heartbeat:worker:{queue}:{hostname}"


@dataclass(frozen=True, slots=True)
class Component:
    name: str  # database, redis, beat, worker:<queue>, feed:<account>
    ready: bool
    detail: str


def heartbeat_check(name: str, *, beat_at: float | None, now: float, stale_s: float) -> Component:
    if beat_at is None:
        return Component(name, False, "no heartbeat")
    age = now - beat_at
    if age > stale_s:
        return Component(name, False, f"last heartbeat {age:.1f} s ago (stale after {stale_s:g} s)")
    return Component(name, True, f"last heartbeat {age:.1f} s ago")


def workers_check(queue: str, *, beats: dict[str, float], now: float, stale_s: float) -> Component:
    """Ready when at least one worker consuming ``queue`` beat within ``stale_s``."""
    name = f"worker:{queue}"
    fresh = sorted(host for host, at in beats.items() if now - at <= stale_s)
    if not fresh:
        return Component(name, False, f"no worker consuming {queue} beat within {stale_s:g} s")
    return Component(name, True, ", ".join(fresh))


def feed_check(status: FeedStatus, *, market_open: bool, silent_s: float) -> Component | None:
    """None for a disabled account. A silent feed is expected outside market hours and with nothing planned."""
    if not status.enabled:
        return None
    name = f"feed:{status.account}"
    if status.health != BrokerAccount.Health.OK:
        return Component(name, False, f"account {status.health} {status.health_reason}".strip())
    if status.lease_holder is None:
        return Component(name, False, "no feed holds the lease")
    if not market_open or not status.planned:
        return Component(name, True, f"held by {status.lease_holder}")
    age = status.last_frame_age_s
    if age is None or age > silent_s:
        heard = "no frame yet" if age is None else f"last frame {age:.1f} s ago"
        return Component(name, False, f"silent in market hours: {heard} (limit {silent_s:g} s)")
    return Component(name, True, f"held by {status.lease_holder}, last frame {age:.1f} s ago")


def readiness_components(
    *,
    database: bool,
    redis_up: bool,
    beat_at: float | None,
    worker_beats: dict[str, dict[str, float]],
    feeds: Iterable[FeedStatus],
    now: float,
    market_open: bool,
    stale_s: float,
    silent_s: float,
) -> list[Component]:
    components = [
        Component("database", database, "ok" if database else "SELECT 1 failed"),
        Component("redis", redis_up, "ok" if redis_up else "PING failed"),
    ]
    if not redis_up:  # heartbeats and leases live in Redis: nothing more can be known
        return components
    components.append(heartbeat_check("beat", beat_at=beat_at, now=now, stale_s=stale_s))
    components += [
        workers_check(queue, beats=beats, now=now, stale_s=stale_s) for queue, beats in worker_beats.items()
    ]
    checked = (feed_check(status, market_open=market_open, silent_s=silent_s) for status in feeds)
    return components + [component for component in checked if component is not None]


def beat_heartbeat_get(client: redis.Redis) -> float | None:
    raw = client.get(BEAT_KEY)
    return float(raw) if raw else None


def worker_heartbeats_get(client: redis.Redis, queue: str) -> dict[str, float]:
    """Every live worker's heartbeat on ``queue``: the keys expire, so there are as many as workers."""
    prefix = worker_key(queue, "")
    keys = list(client.scan_iter(match=f"{prefix}*", count=100))
    values = client.mget(keys) if keys else []
    return {key.decode()[len(prefix) :]: float(raw) for key, raw in zip(keys, values, strict=True) if raw}


def beat_heartbeat_record(client: redis.Redis, *, now: float, ttl_s: float) -> None:
    client.set(BEAT_KEY, repr(now), px=int(ttl_s * 1000))


def worker_heartbeat_record(
    client: redis.Redis, *, hostname: str, queues: Iterable[str], now: float, ttl_s: float
) -> None:
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.set(worker_key(queue, hostname), repr(now), px=int(ttl_s * 1000))
        pipe.execute()


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def redis_ok() -> bool:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@dataclass(frozen=True, slots=True)
class Readiness:
    components: list[Component]
    feeds: list[FeedStatus]  # every account's, as the feed checks read them; [] without Redis or database
    market_open: bool


def readiness_evaluate() -> Readiness:
    """Every component of the fleet now, from Redis, the database and the market clock."""
    database, redis_up = database_ok(), redis_ok()
    now = time.time()
    beat_at, worker_beats, feeds = None, {}, []
    if redis_up:
        client = redis_client()
        try:
            beat_at = beat_heartbeat_get(client)
            worker_beats = {q: worker_heartbeats_get(client, q) for q in settings.READYZ_WORKER_QUEUES}
            # The feeds' list needs the accounts from the database as well as their leases.
            feeds = feed_status_list(client=client, now=now) if database else []
        finally:
            client.close()
    market_open = market_calendar().session_open(market_now())
    components = readiness_components(
        database=database,
        redis_up=redis_up,
        beat_at=beat_at,
        worker_beats=worker_beats,
        feeds=feeds,
        now=now,
        market_open=market_open,
        stale_s=settings.READYZ_HEARTBEAT_STALE_S,
        silent_s=settings.READYZ_FEED_SILENT_S,
    )
    return Readiness(components, feeds, market_open)
