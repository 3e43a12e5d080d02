import json
from datetime import timedelta
from decimal import Decimal

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from orders.apis import (
    OrderDetailOutputSerializer,
    OrderEventOutputSerializer,
    OrderOutputSerializer,
    OrderPlacedOutputSerializer,
)
from orders.models import Order, OrderEvent
from orders.services import TRADABLE_ACCOUNTS
from orders.states import OrderStatus
from orders.submission import order_submit
from tests.orders.conftest import Trader, limit_body, make_trader, queued_submissions
from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from ticks.exchange_calendar import market_calendar
from ticks.models import BrokerAccount, Instrument

pytestmark = pytest.mark.django_db


def test_an_order_is_stored_pending_with_its_history_and_queued(
    trader: Trader, option: Instrument, redis_client: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = trader.place(limit_body(option))

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "PENDING"
    assert (body["account"], body["quantity"], body["price"], body["tag"]) == ("demo", 65, "101.5", "algo1")
    assert body["broker_order_id"] is None and body["filled_quantity"] == 0
    history = trader.api.get(f"/api/v1/orders/{body['id']}").json()["events"]
    assert [(e["source"], e["status_to"]) for e in history] == [("api", "PENDING")]
    order = Order.objects.get()
    assert len(order.kite_tag) == 20 and order.kite_tag.isalnum() and order.kite_tag != order.tag
    assert queued_submissions(redis_client) == [order.pk]


def test_queueing_an_order_waits_on_no_result(
    trader: Trader, option: Instrument, redis_client: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    # Waiting on a result subscribes to its Redis channel: a new connection for each ASGI request thread.
    with django_capture_on_commit_callbacks(execute=True):
        trader.place(limit_body(option))

    (message,) = [json.loads(raw) for raw in redis_client.lrange("orders", 0, -1)]
    assert message["headers"]["ignore_result"] is True
    channel = f"celery-task-meta-{message['headers']['id']}"
    assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 0)]


def test_the_same_key_and_body_returns_the_original_and_queues_nothing_more(
    trader: Trader, option: Instrument, redis_client: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = trader.place(limit_body(option))
        # the same body, written differently: key order and 101.50 for 101.5
        again = trader.place(dict(reversed(limit_body(option, price=101.50).items())))

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1
    assert len(queued_submissions(redis_client)) == 1


def test_the_same_key_with_another_body_is_a_conflict(trader: Trader, option: Instrument) -> None:
    first = trader.place(limit_body(option))
    response = trader.place(limit_body(option, price=102))

    assert response.status_code == 409
    assert response.json()["order_id"] == first.json()["id"]
    assert Order.objects.count() == 1


def test_a_retry_gets_its_original_even_when_the_same_request_would_be_refused_now(
    trader: Trader, account: BrokerAccount, option: Instrument, settings, market_open_clock
) -> None:
    first = trader.place(limit_body(option))
    settings.MARKET_CLOCK = market_open_clock.replace(hour=19).isoformat()
    BrokerAccount.objects.filter(pk=account.pk).update(enabled=False)
    TRADABLE_ACCOUNTS.clear()  # as after ORDER_LOOKUP_CACHE_S

    again = trader.place(limit_body(option))
    changed = trader.place(limit_body(option, price=102))

    assert (first.status_code, again.status_code, changed.status_code) == (201, 200, 409)
    assert again.json()["id"] == first.json()["id"] == changed.json()["order_id"]
    assert Order.objects.count() == 1


def test_idempotency_keys_belong_to_their_client(
    trader: Trader, account: BrokerAccount, option: Instrument
) -> None:
    other = make_trader(account)

    assert trader.place(limit_body(option)).status_code == 201
    assert other.place(limit_body(option)).status_code == 201
    assert Order.objects.count() == 2


@pytest.mark.parametrize("key", [None, "", "x" * 256, "has space", "ключ"])
def test_a_missing_or_malformed_idempotency_key_is_refused(
    trader: Trader, option: Instrument, key: str | None
) -> None:
    response = trader.place(limit_body(option), key=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Order.objects.exists()


def test_trading_needs_a_permission_on_the_account(trader: Trader, option: Instrument) -> None:
    BrokerAccountFactory(name="other")

    for name in ("other", "nonexistent"):
        response = trader.place(limit_body(option, account=name), key=f"k-{name}")
        assert response.status_code == 403
        assert "account" in response.json()
    assert not Order.objects.exists()


def test_a_disabled_account_or_a_refused_token_takes_no_orders(
    trader: Trader, account: BrokerAccount, option: Instrument
) -> None:
    BrokerAccount.objects.filter(pk=account.pk).update(enabled=False)
    assert trader.place(limit_body(option), key="a").status_code == 400

    BrokerAccount.objects.filter(pk=account.pk).update(
        enabled=True, health=BrokerAccount.Health.TOKEN_EXPIRED
    )
    response = trader.place(limit_body(option), key="b")
    assert response.status_code == 409
    assert "log in again" in response.json()["account"][0]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": 64}, "quantity"),
        ({"price": 101.52}, "price"),
        ({"order_type": "MARKET"}, "price"),
        ({"order_type": "SL"}, "trigger_price"),
        ({"product": "CNC"}, "product"),
        ({"variety": "amo"}, "variety"),
        ({"quantity": 65 * 30}, "quantity"),  # above NIFTY's freeze quantity, no autoslice
        ({"tradingsymbol": "NIFTY99JAN1CE"}, "tradingsymbol"),
        ({"validity": "TTL"}, "validity_ttl"),
    ],
)
def test_invalid_orders_get_a_400_naming_the_field_and_nothing_is_stored(
    trader: Trader, option: Instrument, redis_client: redis.Redis, changes: dict, field: str
) -> None:
    response = trader.place(limit_body(option, **changes))

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Order.objects.exists() and not OrderEvent.objects.exists()


def test_an_expired_contract_is_refused(trader: Trader, market_open_clock) -> None:
    expired = OptionFactory(expiry=market_open_clock.date() - timedelta(days=3))
    response = trader.place(limit_body(expired))

    assert response.status_code == 400
    assert "expired" in response.json()["tradingsymbol"][0]


def test_outside_market_hours_only_amo_is_taken(
    trader: Trader, option: Instrument, settings, market_open_clock
) -> None:
    settings.MARKET_CLOCK = market_open_clock.replace(hour=19).isoformat()

    assert trader.place(limit_body(option), key="a").json()["variety"] == [
        "The market is closed (09:15-15:30 IST on trading days): only AMO orders now."
    ]
    assert trader.place(limit_body(option, variety="amo"), key="b").status_code == 201


@pytest.mark.clock  # MARKET_CLOCK=wall: the host's instant decides, as in production
def test_on_the_wall_clock_the_hosts_instant_decides_the_market_hours(
    trader: Trader, option: Instrument, settings
) -> None:
    settings.MARKET_CLOCK = "wall"

    opened_before = market_calendar().session_open(timezone.now())
    response = trader.place(limit_body(option))
    opened_after = market_calendar().session_open(timezone.now())

    # A run that crosses 09:15 or 15:30 during the request may rightly get either answer.
    assert response.status_code in {201 if opened else 400 for opened in (opened_before, opened_after)}
    if response.status_code == 400:
        assert response.json()["variety"] == [
            "The market is closed (09:15-15:30 IST on trading days): only AMO orders now."
        ]


def test_auto_slicing_stores_one_order_per_slice(
    trader: Trader, option: Instrument, redis_client: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = trader.place(limit_body(option, quantity=65 * 60, autoslice=True))

    assert response.status_code == 201
    body = response.json()
    slices = list(Order.objects.order_by("id"))
    assert [o.quantity for o in slices] == [1755, 1755, 390]
    assert body["id"] == slices[0].pk and body["slice_ids"] == [o.pk for o in slices[1:]]
    assert {o.parent_id for o in slices[1:]} == {slices[0].pk}
    assert len({o.kite_tag for o in slices}) == 3
    assert queued_submissions(redis_client) == [o.pk for o in slices]
    replay = trader.place(limit_body(option, quantity=65 * 60, autoslice=True))
    assert (replay.status_code, replay.json()["id"]) == (200, body["id"])


def test_the_list_is_the_clients_own_newest_first_filtered_and_paginated(
    trader: Trader, account: BrokerAccount, option: Instrument
) -> None:
    other = make_trader(account)
    for n in range(3):
        trader.place(limit_body(option, tag=f"t{n}"), key=f"k{n}")
    other.place(limit_body(option), key="theirs")
    Order.objects.filter(tag="t1").update(status=OrderStatus.OPEN)

    everything = trader.api.get("/api/v1/orders").json()
    assert everything["count"] == 3
    assert [o["tag"] for o in everything["results"]] == ["t2", "t1", "t0"]
    assert [o["tag"] for o in trader.api.get("/api/v1/orders?status=open,complete").json()["results"]] == [
        "t1"
    ]
    assert trader.api.get("/api/v1/orders?tag=t0").json()["count"] == 1
    assert trader.api.get("/api/v1/orders?account=nope").json()["count"] == 0
    page = trader.api.get("/api/v1/orders?limit=2&offset=2").json()
    assert [o["tag"] for o in page["results"]] == ["t0"]
    assert trader.api.get("/api/v1/orders?status=BOGUS").status_code == 400


def test_the_list_makes_the_same_queries_for_3_or_30_orders(trader: Trader, option: Instrument) -> None:
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert trader.api.get("/api/v1/orders").status_code == 200
        return len(captured)

    for n in range(3):
        trader.place(limit_body(option), key=f"a{n}")
    few = queries_for_list()
    for n in range(27):
        trader.place(limit_body(option), key=f"b{n}")

    assert queries_for_list() == few
    assert few <= 5  # key lookup, user, count, page (with the account joined)


def test_the_detail_has_the_history_and_other_clients_orders_are_404(
    trader: Trader, account: BrokerAccount, option: Instrument
) -> None:
    order_id = trader.place(limit_body(option)).json()["id"]

    with CaptureQueriesContext(connection) as captured:
        detail = trader.api.get(f"/api/v1/orders/{order_id}")
    assert detail.status_code == 200
    assert [e["status_to"] for e in detail.json()["events"]] == ["PENDING"]
    assert len(captured) <= 5  # key, user, order + account, events, slices
    assert make_trader(account).api.get(f"/api/v1/orders/{order_id}").status_code == 404
    assert trader.api.get("/api/v1/orders/999999").status_code == 404


def test_cancelling_an_order_kite_never_saw_is_local_and_final(
    trader: Trader, option: Instrument, redis_client: redis.Redis
) -> None:
    order_id = trader.place(limit_body(option)).json()["id"]

    response = trader.api.delete(f"/api/v1/orders/{order_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert [(e["source"], e["status_to"]) for e in response.json()["events"]] == [
        ("api", "PENDING"),
        ("api", "CANCELLED"),
    ]
    assert order_submit(order_id=order_id).outcome == "done"  # the queued submission does nothing
    assert trader.api.delete(f"/api/v1/orders/{order_id}").status_code == 409


def test_an_order_being_sent_cannot_be_cancelled_or_modified_yet(trader: Trader, option: Instrument) -> None:
    order_id = trader.place(limit_body(option)).json()["id"]
    Order.objects.filter(pk=order_id).update(status=OrderStatus.SUBMITTING)

    assert trader.api.delete(f"/api/v1/orders/{order_id}").status_code == 409
    assert trader.api.patch(f"/api/v1/orders/{order_id}", {"price": 100}, format="json").status_code == 409


def test_modifying_an_order_kite_never_saw_is_local_and_validated(trader: Trader, option: Instrument) -> None:
    order_id = trader.place(limit_body(option)).json()["id"]

    bad = trader.api.patch(f"/api/v1/orders/{order_id}", {"price": 100.01}, format="json")
    assert (bad.status_code, list(bad.json())) == (400, ["price", "detail"])
    response = trader.api.patch(f"/api/v1/orders/{order_id}", {"price": 100, "quantity": 130}, format="json")

    assert response.status_code == 200
    assert (response.json()["price"], response.json()["quantity"]) == ("100", 130)
    assert response.json()["modification_count"] == 1
    assert response.json()["events"][-1]["message"] == "modified before it was sent to Kite"
    order = Order.objects.get()
    assert (order.price, order.pending_quantity) == (Decimal("100"), 130)
    assert trader.api.patch(f"/api/v1/orders/{order_id}", {}, format="json").status_code == 400
    assert trader.api.patch(f"/api/v1/orders/{order_id}", {"tag": "x"}, format="json").status_code == 400


def test_kite_allows_25_modifications(trader: Trader, option: Instrument) -> None:
    order_id = trader.place(limit_body(option)).json()["id"]
    Order.objects.filter(pk=order_id).update(modification_count=25)

    response = trader.api.patch(f"/api/v1/orders/{order_id}", {"price": 100}, format="json")

    assert response.status_code == 409
    assert "25" in response.json()["detail"]


def test_anonymous_requests_are_refused(option: Instrument) -> None:
    assert APIClient().post("/api/v1/orders", limit_body(option), format="json").status_code == 401
    assert APIClient().get("/api/v1/orders").status_code == 401
    assert APIClient().get("/api/v1/positions?account=demo").status_code == 401


def test_the_openapi_schema_documents_the_order_endpoints(trader: Trader) -> None:
    schema = trader.api.get("/api/schema/?format=json").json()

    post = schema["paths"]["/api/v1/orders"]["post"]
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= post["parameters"][0].items()
    assert set(post["responses"]) >= {"200", "201", "409"}
    assert {"get", "patch", "delete"} <= set(schema["paths"]["/api/v1/orders/{order_id}"])
    assert "/api/v1/positions" in schema["paths"]


def test_the_documented_shapes_match_what_is_served(trader: Trader, option: Instrument) -> None:
    placed = trader.place(limit_body(option)).json()
    detail = trader.api.get(f"/api/v1/orders/{placed['id']}").json()
    listed = trader.api.get("/api/v1/orders").json()["results"][0]

    assert set(placed) == set(OrderPlacedOutputSerializer().fields)
    assert set(detail) == set(OrderDetailOutputSerializer().fields)
    assert set(listed) == set(OrderOutputSerializer().fields)
    assert set(detail["events"][0]) == set(OrderEventOutputSerializer().fields)
