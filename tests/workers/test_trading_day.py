"""The trading day's steps as Celery tasks: each starts once per market date, in order, and the
06:00 rollover marks dead tokens."""

import base64
import json
from datetime import datetime, timedelta

import pytest
import redis

from tests.ticks.factories import BrokerAccountFactory
from ticks.models import BrokerAccount
from ticks.services import broker_tokens_expire
from workers.services import trading_day_advance

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _queued(client: redis.Redis) -> list[tuple[str, dict]]:
    """(task name, kwargs) of the messages waiting on the ``default`` queue (kombu's Redis list), oldest first."""
    messages = [json.loads(raw) for raw in reversed(client.lrange("default", 0, -1))]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[1]) for m in messages]


def test_each_due_step_starts_once_per_market_date(redis_client: redis.Redis) -> None:
    at = datetime.fromisoformat("2026-12-08T09:05:00+05:30")

    first = trading_day_advance(client=redis_client, now=at)
    again = trading_day_advance(client=redis_client, now=at + timedelta(seconds=5))
    later = trading_day_advance(client=redis_client, now=at + timedelta(hours=6, minutes=30))

    assert first == ["token_expiry", "instruments_refresh", "preopen_plan"]
    assert again == []
    assert later == ["live", "expiry_roll"]
    assert _queued(redis_client) == [
        ("day.token_expiry", {}),
        ("ticks.instruments_refresh", {}),
        ("feeds.preopen_plan", {"reason": "preopen_plan"}),
        ("feeds.rebalance", {"reason": "live"}),
        ("feeds.expiry_roll", {"reason": "expiry_roll"}),
    ]


def test_a_holiday_only_rolls_the_tokens(redis_client: redis.Redis) -> None:
    assert trading_day_advance(
        client=redis_client, now=datetime.fromisoformat("2026-12-25T16:00:00+05:30")
    ) == ["token_expiry"]


def test_the_rollover_marks_only_enabled_healthy_accounts_whose_token_died() -> None:
    rollover = datetime.fromisoformat("2026-12-08T06:00:00+05:30")
    dead = BrokerAccountFactory(name="dead", token_expires_at=rollover)
    fresh = BrokerAccountFactory(name="fresh", token_expires_at=rollover + timedelta(days=1))
    BrokerAccountFactory(name="off", token_expires_at=rollover, enabled=False)

    assert broker_tokens_expire(now=rollover) == ["dead"]
    assert broker_tokens_expire(now=rollover) == []

    dead.refresh_from_db()
    assert dead.health == BrokerAccount.Health.TOKEN_EXPIRED
    assert dead.health_reason == "access token expired at 2026-12-08 06:00 IST"
    assert BrokerAccount.objects.get(pk=fresh.pk).health == BrokerAccount.Health.OK
