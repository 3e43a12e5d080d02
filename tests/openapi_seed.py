"""What the OpenAPI tests share: the schema as served, the app called in the test's own thread and
transaction, and a small seeded world in which every operation has something to answer with."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import redis
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from schemathesis.specs.openapi.schemas import OpenApiSchema

from greeks.models import GreeksSnapshot
from orders.authentication import API_KEYS
from orders.models import Order, OrderEvent, TradingPermission
from orders.selectors import INSTRUMENTS
from orders.services import TRADABLE_ACCOUNTS
from tests.greeks.snapshots import greeks_snapshot
from tests.orders.factories import OrderFactory
from tests.ticks.factories import BrokerAccountFactory, FutureFactory, OptionFactory, UserFactory
from ticks.market_time import IST
from ticks.models import Bar, BrokerAccount, ClientApiKey, DashboardPreferences, Instrument

DAY = date(2026, 12, 1)  # the stored minutes' day (bars, greeks): any past day, fixed for any clock
ACCOUNT = "demo"


def served_schema() -> dict[str, Any]:
    """The document /api/schema/ serves, as JSON."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


@contextmanager
def in_process(schema: dict[str, Any]) -> Iterator[OpenApiSchema]:
    """The schema, its calls answered by Django's WSGI handler in this thread: as django.test.Client
    does, without closing the test's database connection (and with it its transaction) after each."""
    loaded = schemathesis.openapi.from_dict(schema)
    loaded.app = WSGIHandler()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield loaded
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass
class World:
    key: str
    account: BrokerAccount
    option: Instrument
    order: Order
    other_clients_order: Order

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Api-Key {self.key}"}


def _minute(k: int) -> datetime:
    return datetime.combine(DAY, time(10, 0), tzinfo=IST) + timedelta(minutes=k)


def seed_world(client: redis.Redis) -> World:
    """A trader with a key and an account, a NIFTY chain with stored minutes, orders (its own and
    another client's) and Kite's positions already cached, so no request goes to Kite."""
    for cache in (API_KEYS, TRADABLE_ACCOUNTS, INSTRUMENTS):
        cache.clear()  # rows cached by an earlier test (SQLite reuses ids) must not answer here
    user = UserFactory()
    _, key = ClientApiKey.objects.create_key(name="openapi", user=user)
    account = BrokerAccountFactory(name=ACCOUNT)
    TradingPermission.objects.create(user=user, account=account)
    option = OptionFactory(strike=Decimal(24_800))
    OptionFactory(strike=Decimal(24_800), instrument_type=Instrument.Type.PE, expiry=option.expiry)
    FutureFactory(expiry=option.expiry)
    Bar.objects.bulk_create(
        Bar(
            instrument_token=option.instrument_token,
            interval="minute",
            start=_minute(k),
            open=100,
            high=101,
            low=99,
            close=100.5,
            volume=10,
            oi=1000,
        )
        for k in range(3)
    )
    GreeksSnapshot.objects.bulk_create(greeks_snapshot(option, _minute(k)) for k in range(3))
    order = OrderFactory(client=user, account=account, instrument=option)
    OrderEvent.objects.create(order=order, source=OrderEvent.Source.API, status_to=order.status)
    positions = {"account": ACCOUNT, "fetched_at": _minute(0).isoformat(), "net": [], "day": []}
    client.set(f"kite:positions:{account.pk}", json.dumps(positions))
    return World(key, account, option, order, OrderFactory(instrument=option))


def row_counts() -> dict[str, int]:
    """The rows a refused request must not add to (or take from)."""
    return {
        "orders": Order.objects.count(),
        "order_events": OrderEvent.objects.count(),
        "preferences": DashboardPreferences.objects.count(),
        "keys": ClientApiKey.objects.count(),
        "permissions": TradingPermission.objects.count(),
    }
