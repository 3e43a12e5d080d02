"""Kite's view of our orders: WebSocket updates, reconcile polls, the stuck-order sweeper, modify/cancel."""

import logging
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.utils import timezone

from kitesim.testing import KitesimThread
from orders.kite_sync import order_apply_kite_update, orders_reconcile, orders_sweep_stuck
from orders.models import Order, OrderEvent
from orders.services import orders_enqueue
from orders.states import OrderStatus
from orders.submission import order_submit
from orders.tasks import apply_kite_update
from tests.orders.conftest import Trader, limit_body, make_trader, queued_submissions
from tests.orders.factories import OrderFactory
from tests.orders.kitebook import atm_option, faults, kite_orders, tagged
from ticks.kite import kite_client_for
from ticks.models import BrokerAccount

WS = OrderEvent.Source.WEBSOCKET


def update(order: Order, status: str, *, at: str = "09:20:01", filled: int = 0, order_id: str = "260817000000001",
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "order_id": order_id,
        "status": status,
        "tag": order.kite_tag,
        "tags": [order.kite_tag],
        "status_message": None,
        "order_timestamp": "2026-08-17 09:20:00",
        "exchange_update_timestamp": f"2026-08-17 {at}",
        "order_type": "LIMIT",
        "quantity": 65,
        "price": 101.5,
        "trigger_price": 0,
        "filled_quantity": filled,
        "pending_quantity": 65 - filled,
        "average_price": 101.45 if filled else 0,
        **extra,
    }


def apply(order: Order, payload: dict[str, Any]) -> bool:
    moved = order_apply_kite_update(account_id=order.account_id, payload=payload, source=WS)
    order.refresh_from_db()
    return moved


@pytest.mark.django_db
class TestKiteUpdates:
    def test_out_of_order_updates_never_move_an_order_backwards(self) -> None:
        order = OrderFactory(status=OrderStatus.SUBMITTING)

        assert apply(order, update(order, "COMPLETE", at="09:20:05", filled=65))
        assert not apply(order, update(order, "OPEN", at="09:20:01"))
        assert not apply(order, update(order, "TRIGGER PENDING", at="09:20:09"))

        assert (order.status, order.filled_quantity, order.average_price) == (
            "COMPLETE",
            65,
            Decimal("101.45"),
        )
        assert list(order.events.values_list("status_to", flat=True)) == ["COMPLETE"]

    def test_a_duplicate_update_changes_nothing(self) -> None:
        order = OrderFactory(status=OrderStatus.PLACED, broker_order_id="260817000000001")

        assert apply(order, update(order, "OPEN"))
        assert not apply(order, update(order, "OPEN"))

        assert order.events.count() == 1

    def test_partial_fills_and_modifications_move_an_open_order_forward(self) -> None:
        order = OrderFactory(status=OrderStatus.PLACED, broker_order_id="260817000000001")

        apply(order, update(order, "OPEN"))
        apply(order, update(order, "UPDATE", at="09:21:00", price=101.0))  # modified
        apply(
            order, update(order, "UPDATE", at="09:21:00", filled=30, price=101.0)
        )  # a partial fill, same second
        apply(order, update(order, "COMPLETE", at="09:22:00", filled=65, price=101.0))
        apply(order, update(order, "UPDATE", at="09:21:00", price=102.0))  # a late, older modification

        assert [e.kite_status for e in order.events.all()] == ["OPEN", "UPDATE", "UPDATE", "COMPLETE"]
        assert order.price == Decimal("101.0")

    def test_an_update_adopts_an_order_still_being_submitted(self) -> None:
        lease = timezone.now() + timedelta(seconds=10)
        order = OrderFactory(status=OrderStatus.SUBMITTING, claim_token="worker-1", lease_until=lease)

        assert apply(order, update(order, "OPEN"))

        assert (order.status, order.broker_order_id) == (OrderStatus.OPEN, "260817000000001")
        assert (order.claim_token, order.lease_until) == ("", None)
        assert order.placed_at is not None

    def test_orders_placed_elsewhere_are_ignored(self) -> None:
        order = OrderFactory(status=OrderStatus.PLACED, broker_order_id="1")
        foreign = update(order, "OPEN", order_id="999", tag="fromkiteweb", tags=["fromkiteweb"])

        assert not apply(order, foreign)
        assert order.status == OrderStatus.PLACED

    def test_a_second_kite_order_with_our_tag_is_an_error_not_an_update(self, caplog) -> None:
        order = OrderFactory(status=OrderStatus.OPEN, broker_order_id="260817000000001")
        other = OrderFactory(account=order.account, kite_tag="t" * 20)

        with caplog.at_level(logging.ERROR, logger="orders.kite_sync"):
            assert apply(other, update(other, "OPEN", order_id="260817000000002"))
            assert not apply(order, update(order, "COMPLETE", order_id="260817000000777"))

        assert "Kite also shows 260817000000777" in caplog.text

    def test_a_failed_order_is_adopted_if_kite_shows_it_after_all(self, caplog) -> None:
        order = OrderFactory(status=OrderStatus.FAILED)

        with caplog.at_level(logging.ERROR, logger="orders.kite_sync"):
            assert apply(order, update(order, "OPEN"))

        assert order.status == OrderStatus.OPEN
        assert "was FAILED" in caplog.text

    def test_malformed_updates_are_logged_and_ignored(self, caplog) -> None:
        order = OrderFactory(status=OrderStatus.PLACED)

        assert not apply(order, {"status": "OPEN"})
        assert not apply(order, update(order, "OPEN", filled_quantity="x"))
        assert order.status == OrderStatus.PLACED

    def test_the_websocket_task_records_its_source(self) -> None:
        order = OrderFactory(status=OrderStatus.PLACED, broker_order_id="260817000000001")

        assert apply_kite_update(order.account_id, update(order, "CANCELLED")) is True

        assert order.events.get().source == "websocket"


@pytest.mark.django_db
def test_the_sweeper_re_enqueues_overdue_orders_once_per_grace_period(
    redis_client: redis.Redis, settings
) -> None:
    settings.ORDER_STUCK_GRACE_S = 30
    long_ago = timezone.now() - timedelta(minutes=5)
    stuck = OrderFactory(status=OrderStatus.PENDING, next_attempt_at=long_ago, enqueued_at=long_ago)
    OrderFactory(status=OrderStatus.PENDING)  # just accepted: its message is on its way
    waiting = OrderFactory(status=OrderStatus.PENDING, next_attempt_at=long_ago + timedelta(minutes=10))
    OrderFactory(
        status=OrderStatus.SUBMITTING, lease_until=timezone.now(), enqueued_at=long_ago
    )  # being worked
    lapsed = OrderFactory(status=OrderStatus.SUBMITTING, lease_until=long_ago, enqueued_at=long_ago)

    assert sorted(orders_sweep_stuck()) == sorted([stuck.pk, lapsed.pk])
    assert queued_submissions(redis_client) == sorted([stuck.pk, lapsed.pk])
    redis_client.delete("orders")  # those messages are lost too
    assert orders_sweep_stuck() == []  # once per grace period, not once per sweep
    again = orders_sweep_stuck(now=timezone.now() + timedelta(seconds=31))
    assert {stuck.pk, lapsed.pk} <= set(again) and waiting.pk not in again


@pytest.mark.django_db
def test_while_the_queue_has_a_backlog_only_lapsed_leases_are_swept(
    redis_client: redis.Redis, settings
) -> None:
    settings.ORDER_STUCK_GRACE_S = 30
    long_ago = timezone.now() - timedelta(minutes=5)
    queued = OrderFactory(status=OrderStatus.PENDING, next_attempt_at=long_ago, enqueued_at=long_ago)
    lapsed = OrderFactory(status=OrderStatus.SUBMITTING, lease_until=long_ago, enqueued_at=long_ago)
    orders_enqueue([queued.pk])  # its message waits behind a long backlog

    assert orders_sweep_stuck() == [lapsed.pk]
    assert queued_submissions(redis_client) == sorted([queued.pk, lapsed.pk])


# --- against kitesim -------------------------------------------------------------------------------


@pytest.fixture
def resting(fleet: dict[str, BrokerAccount], settings) -> tuple[Trader, Order]:
    """A BUY LIMIT far below the market: it rests OPEN at Kite."""
    settings.MARKET_CLOCK = "kitesim"
    trader = make_trader(fleet["demo"])
    option = atm_option()
    order_id = trader.place(limit_body(option, price=0.05)).json()["id"]
    assert order_submit(order_id=order_id).outcome == "placed"
    orders_reconcile()
    order = Order.objects.get(pk=order_id)
    assert order.status == OrderStatus.OPEN
    return trader, order


@pytest.mark.integration
def test_reconcile_follows_what_happens_at_kite(resting, fleet) -> None:
    _, order = resting
    kite_client_for(fleet["demo"]).cancel_order(variety="regular", order_id=order.broker_order_id)

    assert orders_reconcile() == 1
    assert orders_reconcile() == 0  # nothing live is left to poll

    order.refresh_from_db()
    assert (order.status, order.kite_status) == (OrderStatus.CANCELLED, "CANCELLED")
    assert order.events.last().source == "reconcile"


@pytest.mark.integration
def test_modify_and_cancel_go_to_kite_and_kites_updates_finish_them(resting, fleet) -> None:
    trader, order = resting

    modified = trader.api.patch(f"/api/v1/orders/{order.pk}", {"price": 0.1}, format="json")
    assert modified.status_code == 200, modified.json()
    assert (modified.json()["price"], modified.json()["modification_count"]) == ("0.1", 1)
    [at_kite] = tagged(kite_orders(fleet["demo"]), order.kite_tag)
    assert at_kite["price"] == 0.1 and at_kite["modified"] is True

    cancelled = trader.api.delete(f"/api/v1/orders/{order.pk}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (202, "OPEN")
    assert cancelled.json()["events"][-1]["message"] == "cancel requested at Kite"
    orders_reconcile()
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED


@pytest.mark.integration
def test_kite_refusing_a_cancel_is_a_400_with_kites_message(resting, fleet) -> None:
    trader, order = resting
    kite_client_for(fleet["demo"]).cancel_order(variety="regular", order_id=order.broker_order_id)

    response = trader.api.delete(f"/api/v1/orders/{order.pk}")  # we have not heard of the cancel yet

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Order cannot be cancelled as it is cancelled.",
        "kite_error": "OrderException",
    }


@pytest.mark.integration
def test_kite_down_during_a_cancel_is_a_503(resting, kitesim: KitesimThread) -> None:
    trader, order = resting
    faults(kitesim, rest_5xx_next=1)

    response = trader.api.delete(f"/api/v1/orders/{order.pk}")

    assert response.status_code == 503
    assert "outcome is unknown" in response.json()["detail"]


@pytest.mark.integration
def test_the_sweeper_adopts_what_kite_has_instead_of_re_sending(
    fleet, settings, redis_client: redis.Redis
) -> None:
    settings.MARKET_CLOCK = "kitesim"
    settings.ORDER_STUCK_GRACE_S = 1
    trader, option = make_trader(fleet["demo"]), atm_option()
    order = Order.objects.get(
        pk=trader.place(limit_body(option, order_type="MARKET", price=None)).json()["id"]
    )
    kite_client_for(fleet["demo"]).place_order(
        variety="regular",
        exchange=option.exchange,
        tradingsymbol=option.tradingsymbol,
        transaction_type="BUY",
        quantity=65,
        product="NRML",
        order_type="MARKET",
        tag=order.kite_tag,
    )  # fmt: skip  (a worker placed it and was killed before recording)
    long_ago = timezone.now() - timedelta(minutes=1)
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.SUBMITTING, placement_attempts=1, lease_until=long_ago, enqueued_at=long_ago
    )
    redis_client.delete("orders")

    assert orders_sweep_stuck() == []

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETE
    assert queued_submissions(redis_client) == []


@pytest.mark.integration
def test_positions_come_from_kite_and_are_cached_briefly(
    fleet: dict[str, BrokerAccount], kitesim: KitesimThread, settings
) -> None:
    settings.ORDER_POSITIONS_CACHE_S = 0.5
    trader = make_trader(fleet["demo"])

    first = trader.api.get("/api/v1/positions?account=demo")
    assert first.status_code == 200
    assert (set(first.json()), first.json()["cached"]) == (
        {"account", "fetched_at", "net", "day", "cached"},
        False,
    )
    faults(kitesim, rest_5xx_next=1)
    assert trader.api.get("/api/v1/positions?account=demo").json()["cached"] is True
    time.sleep(0.55)
    assert trader.api.get("/api/v1/positions?account=demo").status_code == 503
    assert trader.api.get("/api/v1/positions?account=demo").json()["cached"] is False
    assert trader.api.get("/api/v1/positions?account=alt").status_code == 403
    assert trader.api.get("/api/v1/positions").status_code == 400
