"""Order fixtures: a trading client with an API key, an option to trade, an open market clock.

The kitesim, fleet and start_worker fixtures are the workers suite's (real kitesim, real Celery).
"""

import base64
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.contrib.auth.models import AbstractBaseUser
from rest_framework.response import Response
from rest_framework.test import APIClient

from orders.authentication import API_KEYS
from orders.models import TradingPermission
from orders.selectors import INSTRUMENTS
from orders.services import TRADABLE_ACCOUNTS
from tests.ticks.factories import BrokerAccountFactory, OptionFactory, UserFactory
from tests.workers.conftest import fleet, kitesim, stack_env, start_worker  # noqa: F401 - shared fixtures
from ticks.exchange_calendar import market_calendar
from ticks.market_time import IST
from ticks.models import BrokerAccount, ClientApiKey, Instrument

# The frozen market clock's day is fixed, not the host's: what an order test proves must not move with
# the host's date. The host's clock is tested where it is read (MARKET_CLOCK=wall, marked ``clock``).
SUNDAY = date(2026, 12, 6)


def next_trading_day_at(hour: int) -> datetime:
    """``hour`` IST on the session after a fixed Sunday (Monday 2026-12-07), whatever the host's date."""
    day = market_calendar().next_session(SUNDAY)
    return datetime.combine(day, time(hour), tzinfo=IST)


@pytest.fixture(autouse=True)
def fresh_lookup_caches() -> None:
    """Rows cached by an earlier test (SQLite reuses their ids) must not answer for this one's."""
    for cache in (API_KEYS, TRADABLE_ACCOUNTS, INSTRUMENTS):
        cache.clear()


@pytest.fixture(autouse=True)
def market_open_clock(settings) -> datetime:
    """A frozen market clock at 10:00 IST on the next session (kitesim tests switch to its clock)."""
    now = next_trading_day_at(10)
    settings.MARKET_CLOCK = now.isoformat()
    return now


@dataclass
class Trader:
    user: AbstractBaseUser
    api: APIClient
    key: str

    def place(self, body: dict[str, Any] | str, key: str | None = "key-1", **headers: str) -> Response:
        if key is not None:
            headers["HTTP_IDEMPOTENCY_KEY"] = key
        if isinstance(body, str):
            return self.api.post("/api/v1/orders", body, content_type="application/json", **headers)
        return self.api.post("/api/v1/orders", body, format="json", **headers)


def make_trader(*accounts: BrokerAccount, username: str | None = None) -> Trader:
    user = UserFactory(username=username) if username else UserFactory()
    for account in accounts:
        TradingPermission.objects.create(user=user, account=account)
    _, key = ClientApiKey.objects.create_key(name="algo", user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return Trader(user=user, api=api, key=key)


@pytest.fixture
def account(db) -> BrokerAccount:
    return BrokerAccountFactory(name="demo")


@pytest.fixture
def option(db) -> Instrument:
    return OptionFactory(strike=Decimal("24800"))


@pytest.fixture
def trader(account: BrokerAccount, redis_client: redis.Redis) -> Trader:
    return make_trader(account)


def limit_body(instrument: Instrument, **changes: Any) -> dict[str, Any]:
    body = {
        "account": "demo",
        "exchange": instrument.exchange,
        "tradingsymbol": instrument.tradingsymbol,
        "variety": "regular",
        "transaction_type": "BUY",
        "order_type": "LIMIT",
        "product": "NRML",
        "quantity": 65,
        "price": 101.5,
        "validity": "DAY",
        "tag": "algo1",
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def queued_submissions(client: redis.Redis) -> list[int]:
    """Order ids of the orders.submit messages waiting on the ``orders`` queue (kombu's Redis list)."""
    messages = [json.loads(raw) for raw in client.lrange("orders", 0, -1)]
    assert all(message["headers"]["task"] == "orders.submit" for message in messages)
    return sorted(json.loads(_body(message))[0][0] for message in messages)


def _body(message: dict[str, Any]) -> str:
    return base64.b64decode(message["body"]).decode()
