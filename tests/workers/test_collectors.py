"""FleetCollector (workers/collectors.py): each scrape-time family from a known database and Redis state."""

import json
import time
from datetime import UTC, date, datetime

import pytest
import redis
from celery import current_app
from django.test import Client
from prometheus_client.core import Metric
from pytest_django.fixtures import Settings

from orders.breaker import CircuitBreaker
from orders.states import OrderStatus
from tests.orders.factories import OrderFactory
from tests.ticks.factories import BrokerAccountFactory
from ticks.exchange_calendar import TradingCalendar
from ticks.feeds.lease import lease_key
from ticks.market_time import IST
from ticks.models import BrokerAccount
from ticks.services import broker_account_set_token
from workers import readiness
from workers.collectors import FleetCollector, breaker_level, calendar_end_family, pending_order_families
from workers.control import feed_status_key

pytestmark = pytest.mark.django_db

SESSION_HOUR = "2025-01-08T10:00:00+05:30"  # a Wednesday session, market open
AFTER_CLOSE = "2025-01-08T20:00:00+05:30"
ISSUED = datetime(2025, 1, 8, 3, 0, tzinfo=UTC)  # 08:30 IST: the token dies at 06:00 IST the next day


@pytest.fixture(autouse=True)
def _closed_market(settings: Settings) -> None:
    """Every scrape reads the market clock: frozen, so no test depends on the host's hour."""
    settings.MARKET_CLOCK = AFTER_CLOSE


def _scrape() -> dict[str, Metric]:
    return {family.name: family for family in FleetCollector().collect()}


def _values(family: Metric, label: str) -> dict[str, float]:
    return {sample.labels[label]: sample.value for sample in family.samples}


def _value(family: Metric) -> float:
    [sample] = family.samples
    return sample.value


def test_the_calendar_s_end_is_midnight_ist_after_its_last_known_day() -> None:
    calendar = TradingCalendar(frozenset(), known_until=date(2026, 12, 31))

    end = _value(calendar_end_family(calendar))

    assert (
        end
        == datetime(2027, 1, 1, tzinfo=IST).timestamp()
        == datetime(2026, 12, 31, 18, 30, tzinfo=UTC).timestamp()
    )
    assert "market_calendar_known_until_timestamp_seconds" in _scrape()


def test_ticker_ready_has_each_readyz_component(redis_client: redis.Redis) -> None:
    account = BrokerAccountFactory(name="demo")
    BrokerAccountFactory(name="quiet")  # no feed holds its lease
    redis_client.set(lease_key(account.pk), "feeds@test")
    readiness.beat_heartbeat_record(redis_client, now=time.time(), ttl_s=60)
    readiness.worker_heartbeat_record(
        redis_client, hostname="worker@test", queues=["default"], now=time.time(), ttl_s=60
    )

    ready = _values(_scrape()["ticker_ready"], "component")

    assert ready == {
        "database": 1.0,
        "redis": 1.0,
        "beat": 1.0,
        "worker:default": 1.0,
        "worker:orders": 0.0,
        "feed:demo": 1.0,
        "feed:quiet": 0.0,
    }
    not_ready = Client().get("/readyz").json()["not_ready"]
    assert not_ready == [name for name, value in ready.items() if not value]  # the same evaluation


@pytest.mark.parametrize(("clock", "open_"), [(SESSION_HOUR, 1.0), (AFTER_CLOSE, 0.0)])
def test_ticker_market_open_follows_the_market_clock(
    redis_client: redis.Redis, settings: Settings, clock: str, open_: float
) -> None:
    settings.MARKET_CLOCK = clock

    assert _value(_scrape()["ticker_market_open"]) == open_


def test_frame_age_is_given_for_accounts_that_framed(redis_client: redis.Redis) -> None:
    framed, _never = BrokerAccountFactory(name="framed"), BrokerAccountFactory(name="never")
    report = {"last_frame_at": time.time() - 30, "connections": {"0": [256265]}}
    redis_client.set(feed_status_key(framed.pk), json.dumps(report))

    ages = _values(_scrape()["feed_last_frame_age_seconds"], "account")

    assert set(ages) == {"framed"}
    assert ages["framed"] >= 30


def test_token_expiry_is_given_for_enabled_accounts_with_a_token(redis_client: redis.Redis) -> None:
    account = broker_account_set_token(
        account=BrokerAccountFactory(name="live"), access_token="day-token", issued_at=ISSUED
    )
    BrokerAccountFactory(name="no-token", access_token="")
    broker_account_set_token(
        account=BrokerAccountFactory(name="off", enabled=False), access_token="old", issued_at=ISSUED
    )

    expiries = _values(_scrape()["kite_token_expires_timestamp_seconds"], "account")

    assert expiries == {"live": datetime(2025, 1, 9, 0, 30, tzinfo=UTC).timestamp()}  # 06:00 IST
    assert account.token_expires_at is not None
    assert expiries["live"] == account.token_expires_at.timestamp()


def test_account_health_is_one_for_the_current_state_only(redis_client: redis.Redis) -> None:
    BrokerAccountFactory(name="fine")
    BrokerAccountFactory(name="lapsed", health=BrokerAccount.Health.TOKEN_EXPIRED)

    samples = {
        (s.labels["account"], s.labels["state"]): s.value for s in _scrape()["kite_account_health"].samples
    }

    assert samples == {
        ("fine", "ok"): 1.0,
        ("fine", "token_expired"): 0.0,
        ("fine", "failing"): 0.0,
        ("lapsed", "ok"): 0.0,
        ("lapsed", "token_expired"): 1.0,
        ("lapsed", "failing"): 0.0,
    }


def test_breaker_state_per_account(redis_client: redis.Redis, settings: Settings) -> None:
    settings.ORDER_BREAKER_FAILURES = 1
    settings.ORDER_BREAKER_RESET_S = 3600
    closed, opened = BrokerAccountFactory(name="closed"), BrokerAccountFactory(name="opened")
    probing = BrokerAccountFactory(name="probing")
    CircuitBreaker(redis_client, closed.pk).record_success()
    assert CircuitBreaker(redis_client, opened.pk).record_failure()
    settings.ORDER_BREAKER_RESET_S = 0  # its open period is over at once: the next caller probes
    half_open = CircuitBreaker(redis_client, probing.pk)
    assert half_open.record_failure()
    assert half_open.allow() == 0.0
    assert half_open.state().state == "half_open"

    states = _values(_scrape()["orders_breaker_state"], "account")

    assert states == {"closed": 0.0, "opened": 2.0, "probing": 1.0}


def test_an_open_breaker_past_its_period_reads_probing_not_open(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """With no order since, an open breaker stays stored as open; it blocks nothing, so 1, not 2."""
    settings.ORDER_BREAKER_FAILURES = 1
    settings.ORDER_BREAKER_RESET_S = 60
    account = BrokerAccountFactory(name="idle")
    assert CircuitBreaker(redis_client, account.pk).record_failure()
    state = CircuitBreaker(redis_client, account.pk).state()
    assert state.state == "open"

    assert breaker_level(state, now=state.open_until - 1) == 2.0
    assert breaker_level(state, now=state.open_until + 1) == 1.0


def test_pending_orders_count_and_oldest_age() -> None:
    oldest = datetime(2025, 1, 8, 4, 0, tzinfo=UTC)
    OrderFactory(created_at=oldest)
    OrderFactory(created_at=datetime(2025, 1, 8, 4, 1, tzinfo=UTC))
    OrderFactory(status=OrderStatus.COMPLETE, created_at=datetime(2025, 1, 1, tzinfo=UTC))

    count, age = pending_order_families(now=oldest.timestamp() + 90)

    assert _value(count) == 2
    assert _value(age) == 90


def test_no_pending_order_is_zero_and_zero_age() -> None:
    OrderFactory(status=OrderStatus.PLACED)

    count, age = pending_order_families(now=time.time())

    assert (_value(count), _value(age)) == (0, 0)


def test_queue_length_counts_the_messages_waiting_in_each_queue(redis_client: redis.Redis) -> None:
    for _ in range(3):
        current_app.send_task("tests.never_consumed", queue="orders")
    current_app.send_task("tests.never_consumed", queue="default")

    lengths = _values(_scrape()["celery_queue_length"], "queue")

    assert lengths == {"default": 1.0, "orders": 3.0, "feeds": 0.0}


def test_without_redis_the_redis_families_are_left_out(settings: Settings) -> None:
    settings.REDIS_URL = settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    BrokerAccountFactory(name="demo")

    families = _scrape()

    assert _values(families["ticker_ready"], "component") == {"database": 1.0, "redis": 0.0}
    assert "orders_breaker_state" not in families
    assert "celery_queue_length" not in families
    health = {s.labels["state"]: s.value for s in families["kite_account_health"].samples}
    assert health["ok"] == 1.0  # from the database


def test_metrics_endpoint_serves_the_fleet_families(redis_client: redis.Redis) -> None:
    BrokerAccountFactory(name="demo")

    body = Client().get("/metrics").content.decode()

    for family in ("ticker_ready", "ticker_market_open", "kite_account_health", "celery_queue_length"):
        assert f"# TYPE {family} gauge" in body
    assert 'orders_breaker_state{account="demo"} 0.0' in body
