import time

import pytest
import redis
from django.test import Client

from tests.ticks.factories import BrokerAccountFactory
from ticks.feeds.lease import lease_key
from ticks.models import BrokerAccount
from workers import readiness
from workers.readiness import Component, feed_check, heartbeat_check, readiness_components, workers_check
from workers.selectors import FeedStatus

NOW = 1_736_310_600.0  # any instant: the pure checks only compare it with heartbeat times
SESSION_HOUR = "2025-01-08T10:00:00+05:30"  # a Wednesday session, market open
AFTER_CLOSE = "2025-01-08T20:00:00+05:30"


def _feed(**changes: object) -> FeedStatus:
    status = {
        "account": "demo",
        "enabled": True,
        "health": "ok",
        "health_reason": "",
        "lease_holder": "feeds@host",
        "plan_version": 3,
        "connections": {"0": 40},
        "subscribed": 40,
        "planned": 40,
        "last_frame_age_s": 0.4,
        "state": "streaming",
    }
    return FeedStatus(**{**status, **changes})


def test_a_fresh_heartbeat_is_ready() -> None:
    assert heartbeat_check("beat", beat_at=NOW - 4, now=NOW, stale_s=15).ready


def test_a_stale_heartbeat_says_how_old_it_is() -> None:
    component = heartbeat_check("beat", beat_at=NOW - 40, now=NOW, stale_s=15)

    assert component == Component("beat", False, "last heartbeat 40.0 s ago (stale after 15 s)")


def test_a_missing_heartbeat_is_not_ready() -> None:
    assert heartbeat_check("beat", beat_at=None, now=NOW, stale_s=15) == Component(
        "beat", False, "no heartbeat"
    )


def test_one_fresh_worker_makes_its_queue_ready() -> None:
    beats = {"worker@a": NOW - 60, "worker@b": NOW - 2}

    assert workers_check("orders", beats=beats, now=NOW, stale_s=15) == Component(
        "worker:orders", True, "worker@b"
    )


@pytest.mark.parametrize("beats", [{}, {"worker@a": NOW - 60}])
def test_a_queue_without_a_fresh_worker_is_not_ready(beats: dict[str, float]) -> None:
    component = workers_check("default", beats=beats, now=NOW, stale_s=15)

    assert not component.ready
    assert component.detail == "no worker consuming default beat within 15 s"


def test_a_streaming_feed_is_ready() -> None:
    component = feed_check(_feed(), market_open=True, silent_s=15)

    assert component == Component("feed:demo", True, "held by feeds@host, last frame 0.4 s ago")


def test_a_disabled_account_is_left_out() -> None:
    assert feed_check(_feed(enabled=False, lease_holder=None), market_open=True, silent_s=15) is None


@pytest.mark.parametrize("market_open", [True, False])
def test_a_feed_without_its_lease_is_not_ready_at_any_hour(market_open: bool) -> None:
    component = feed_check(_feed(lease_holder=None), market_open=market_open, silent_s=15)

    assert component == Component("feed:demo", False, "no feed holds the lease")


def test_an_account_whose_token_expired_is_not_ready() -> None:
    status = _feed(health="token_expired", health_reason="403 on connect", lease_holder=None)

    component = feed_check(status, market_open=False, silent_s=15)

    assert component == Component("feed:demo", False, "account token_expired 403 on connect")


@pytest.mark.parametrize("age", [None, 15.1])
def test_a_silent_feed_in_market_hours_is_not_ready(age: float | None) -> None:
    component = feed_check(_feed(last_frame_age_s=age), market_open=True, silent_s=15)

    assert component is not None
    assert not component.ready
    assert component.detail.startswith("silent in market hours")


@pytest.mark.parametrize("changes", [{"last_frame_age_s": 3600.0}, {"last_frame_age_s": None}])
def test_a_silent_feed_is_ready_outside_market_hours(changes: dict[str, object]) -> None:
    component = feed_check(_feed(**changes), market_open=False, silent_s=15)

    assert component == Component("feed:demo", True, "held by feeds@host")


def test_a_feed_with_nothing_planned_may_be_silent_in_market_hours() -> None:
    status = _feed(planned=0, subscribed=0, connections={}, last_frame_age_s=None)

    assert feed_check(status, market_open=True, silent_s=15) == Component(
        "feed:demo", True, "held by feeds@host"
    )


def test_without_redis_only_database_and_redis_are_reported() -> None:
    components = readiness_components(
        database=True,
        redis_up=False,
        beat_at=None,
        worker_beats={},
        feeds=[],
        now=NOW,
        market_open=True,
        stale_s=15,
        silent_s=15,
    )

    assert components == [Component("database", True, "ok"), Component("redis", False, "PING failed")]


def test_every_component_is_reported_once() -> None:
    components = readiness_components(
        database=True,
        redis_up=True,
        beat_at=NOW - 1,
        worker_beats={"default": {"w@a": NOW - 1}, "orders": {}},
        feeds=[_feed(), _feed(account="alt", enabled=False)],
        now=NOW,
        market_open=True,
        stale_s=15,
        silent_s=15,
    )

    assert [(c.name, c.ready) for c in components] == [
        ("database", True),
        ("redis", True),
        ("beat", True),
        ("worker:default", True),
        ("worker:orders", False),
        ("feed:demo", True),
    ]


# --- the endpoint, on Redis and the database -------------------------------------------------------


def _beat_everything(client: redis.Redis) -> None:
    now = time.time()
    readiness.beat_heartbeat_record(client, now=now, ttl_s=60)
    readiness.worker_heartbeat_record(
        client, hostname="worker@test", queues=["default", "orders"], now=now, ttl_s=60
    )


@pytest.mark.clock
@pytest.mark.django_db
def test_readyz_is_200_when_every_component_beats(redis_client: redis.Redis, settings) -> None:
    settings.MARKET_CLOCK = SESSION_HOUR
    account = BrokerAccountFactory(name="demo")
    redis_client.set(lease_key(account.pk), "feeds@test")
    _beat_everything(redis_client)

    response = Client().get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["not_ready"] == []
    assert set(body["components"]) == {
        "database",
        "redis",
        "beat",
        "worker:default",
        "worker:orders",
        "feed:demo",
    }
    assert body["components"]["worker:orders"] == {"ready": True, "detail": "worker@test"}


@pytest.mark.clock
@pytest.mark.django_db
def test_readyz_names_what_is_not_ready(redis_client: redis.Redis, settings) -> None:
    settings.MARKET_CLOCK = AFTER_CLOSE
    BrokerAccountFactory(name="demo")  # no feed holds its lease
    BrokerAccountFactory(name="off", enabled=False)
    BrokerAccountFactory(name="expired", health=BrokerAccount.Health.TOKEN_EXPIRED)
    readiness.worker_heartbeat_record(
        redis_client, hostname="worker@test", queues=["default"], now=time.time(), ttl_s=60
    )

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["not_ready"] == ["beat", "worker:orders", "feed:demo", "feed:expired"]


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_unreachable(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["not_ready"] == ["redis"]


def test_heartbeats_expire_with_their_staleness(redis_client: redis.Redis) -> None:
    _beat_everything(redis_client)

    assert 0 < redis_client.pttl(readiness.BEAT_KEY) <= 60_000
    assert set(readiness.worker_heartbeats_get(redis_client, "orders")) == {"worker@test"}
