"""orders.submission against kitesim, in-process: every branch of "exactly once", deterministically.

The same paths under a real Celery worker (with kills) are in test_worker.py.
"""

import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from kitesim.testing import KitesimThread
from orders.breaker import CircuitBreaker
from orders.kite_sync import orders_reconcile
from orders.models import Order
from orders.redis_io import orders_redis
from orders.services import TRADABLE_ACCOUNTS
from orders.states import OrderStatus
from orders.submission import order_submit
from tests.orders.conftest import Trader, limit_body, make_trader
from tests.orders.kitebook import atm_option, faults, kite_orders, log_in_again, tagged
from ticks.kite import kite_client_for
from ticks.models import BrokerAccount, Instrument
from ticks.services import broker_account_set_token

pytestmark = pytest.mark.integration


@pytest.fixture
def desk(fleet: dict[str, BrokerAccount], settings) -> tuple[Trader, Instrument]:
    settings.MARKET_CLOCK = "kitesim"
    settings.ORDER_RETRY_BASE_S = 0.05
    settings.ORDER_BREAKER_RESET_S = 1.0
    return make_trader(fleet["demo"], fleet["alt"]), atm_option()


def place(trader: Trader, option: Instrument, key: str = "k1", **changes: object) -> Order:
    response = trader.place(limit_body(option, **changes), key=key)
    assert response.status_code == 201, response.json()
    return Order.objects.get(pk=response.json()["id"])


def market(trader: Trader, option: Instrument, key: str = "k1") -> Order:
    return place(trader, option, key, order_type="MARKET", price=None)


def due(order: Order) -> None:
    """Skip the backoff wait (the real task would be re-delivered after it)."""
    Order.objects.filter(pk=order.pk).update(next_attempt_at=timezone.now())


def sources(order: Order) -> list[tuple[str, str, str]]:
    return list(order.events.order_by("id").values_list("source", "status_from", "status_to"))


def test_an_order_reaches_kite_once_with_its_tag_and_kites_id(desk, fleet) -> None:
    trader, option = desk
    order = market(trader, option)

    assert order_submit(order_id=order.pk).outcome == "placed"
    assert order_submit(order_id=order.pk).outcome == "done"  # a second delivery does nothing

    order.refresh_from_db()
    assert order.status == OrderStatus.PLACED and order.placement_attempts == 1
    [kite_order] = tagged(kite_orders(fleet["demo"]), order.kite_tag)
    assert kite_order["order_id"] == order.broker_order_id
    assert sources(order) == [
        ("api", "", "PENDING"),
        ("worker", "PENDING", "SUBMITTING"),
        ("worker", "SUBMITTING", "SUBMITTING"),
        ("kite_response", "SUBMITTING", "PLACED"),
    ]
    assert orders_reconcile() == 1
    order.refresh_from_db()
    assert (order.status, order.kite_status, order.filled_quantity) == ("COMPLETE", "COMPLETE", 65)
    assert order.average_price > 0


def test_kites_rejection_is_final_and_never_retried(desk, fleet) -> None:
    trader, option = desk
    # a stop-loss buy triggering below the last price: Kite refuses it (InputException)
    order = place(trader, option, order_type="SL", price=0.05, trigger_price=0.05)

    assert order_submit(order_id=order.pk).outcome == "rejected"

    order.refresh_from_db()
    assert order.status == OrderStatus.REJECTED
    assert "Trigger price for stoploss buy orders" in order.status_message
    assert order_submit(order_id=order.pk).outcome == "done"
    assert tagged(kite_orders(fleet["demo"]), order.kite_tag) == []


def test_a_timed_out_placement_is_looked_up_and_adopted_never_repeated(
    desk, fleet, kitesim: KitesimThread, settings
) -> None:
    trader, option = desk
    settings.KITE_HTTP_TIMEOUT = 1.0
    order = market(trader, option)
    faults(kitesim, order_timeout_next=1)  # Kite books the order but its answer never comes

    first = order_submit(order_id=order.pk)
    assert first.outcome == "retry"
    order.refresh_from_db()
    assert (order.status, order.placement_attempts) == (OrderStatus.PENDING, 1)
    assert "outcome unknown" in order.status_message
    due(order)

    assert order_submit(order_id=order.pk).outcome == "adopted"

    order.refresh_from_db()
    [kite_order] = tagged(kite_orders(fleet["demo"]), order.kite_tag)
    assert order.broker_order_id == kite_order["order_id"]
    assert order.status == OrderStatus.COMPLETE
    assert sources(order)[-1] == ("reconcile", "SUBMITTING", "COMPLETE")


def test_a_5xx_is_retried_after_the_lookup_finds_nothing(desk, fleet, kitesim: KitesimThread) -> None:
    trader, option = desk
    order = market(trader, option)
    faults(kitesim, rest_5xx_next=1)  # refused before Kite books anything

    assert order_submit(order_id=order.pk).outcome == "retry"
    due(order)
    assert order_submit(order_id=order.pk).outcome == "placed"

    order.refresh_from_db()
    assert order.placement_attempts == 2
    assert len(tagged(kite_orders(fleet["demo"]), order.kite_tag)) == 1


def test_a_429_waits_in_pending_and_does_not_count_against_the_breaker(
    desk, fleet, kitesim: KitesimThread
) -> None:
    trader, option = desk
    order = market(trader, option)
    faults(kitesim, rest_429_next=1)

    result = order_submit(order_id=order.pk)

    assert result.outcome == "retry" and 1.0 <= result.retry_in <= 2.0
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and "429" in order.status_message
    assert CircuitBreaker(orders_redis(), fleet["demo"].pk).state().failures == 0
    due(order)
    assert order_submit(order_id=order.pk).outcome == "placed"
    assert len(tagged(kite_orders(fleet["demo"]), order.kite_tag)) == 1


def test_the_breaker_opens_on_5xx_bursts_orders_wait_pending_and_it_closes_again(
    desk, fleet, kitesim: KitesimThread, settings
) -> None:
    trader, option = desk
    settings.ORDER_BREAKER_FAILURES = 2
    first, second = market(trader, option, "a"), market(trader, option, "b")
    faults(kitesim, rest_5xx_next=50)

    assert order_submit(order_id=first.pk).outcome == "retry"  # failure 1: the placement
    due(first)
    assert order_submit(order_id=first.pk).outcome == "retry"  # failure 2: the tag lookup -> open
    breaker = CircuitBreaker(orders_redis(), fleet["demo"].pk)
    assert breaker.state().state == "open"

    waiting = order_submit(order_id=second.pk)
    assert waiting.outcome == "waiting" and 0 < waiting.retry_in <= 1.0
    second.refresh_from_db()
    assert second.status == OrderStatus.PENDING and "circuit open" in second.status_message
    assert sources(second) == [("api", "", "PENDING")]  # failed fast: never claimed, no Kite call

    faults(kitesim, rest_5xx_next=0)
    time.sleep(1.05)
    due(first)
    due(second)
    assert order_submit(order_id=first.pk).outcome == "placed"  # the half-open probe
    assert breaker.state().state == "closed"
    assert order_submit(order_id=second.pk).outcome == "placed"
    book = kite_orders(fleet["demo"])
    assert len(tagged(book, first.kite_tag)) == len(tagged(book, second.kite_tag)) == 1
    assert breaker.state().opened == 1


def test_an_expired_token_fails_the_order_with_a_clear_reason(desk, fleet, kitesim: KitesimThread) -> None:
    trader, option = desk
    order = market(trader, option)
    requests.post(
        f"{kitesim.root}/_sim/expire_tokens", json={"api_key": "demo"}, timeout=5
    ).raise_for_status()

    assert order_submit(order_id=order.pk).outcome == "failed"

    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert "refused the access token" in order.status_message and "not placed" in order.status_message
    account = BrokerAccount.objects.get(name="demo")
    assert account.health == BrokerAccount.Health.TOKEN_EXPIRED
    # for up to ORDER_LOOKUP_CACHE_S this web process remembers the account as tradable: an order is
    # accepted, and the worker fails it without sending it ...
    stale = trader.place(limit_body(option, order_type="MARKET", price=None), key="k2")
    assert stale.status_code == 201
    assert order_submit(order_id=stale.json()["id"]).outcome == "failed"
    # ... then (the memory lapsed: cleared here) orders are refused at the door until an operator logs in again ...
    TRADABLE_ACCOUNTS.clear()
    assert trader.place(limit_body(option, order_type="MARKET", price=None), key="k2b").status_code == 409
    token = log_in_again(kitesim, "demo", "demosecret")
    broker_account_set_token(account=account, access_token=token, issued_at=timezone.now())
    book = kite_orders(account)
    stale_tag = Order.objects.get(pk=stale.json()["id"]).kite_tag
    assert tagged(book, order.kite_tag) == tagged(book, stale_tag) == []  # nothing was placed
    # ... after which orders flow again
    assert order_submit(order_id=market(trader, option, "k3").pk).outcome == "placed"


def test_a_worker_that_died_before_the_kite_call_is_taken_over(desk, fleet) -> None:
    trader, option = desk
    order = market(trader, option)
    dead = timezone.now() - timedelta(seconds=1)
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.SUBMITTING, claim_token="dead", lease_until=dead
    )

    assert order_submit(order_id=order.pk).outcome == "placed"

    order.refresh_from_db()
    assert order.placement_attempts == 1  # nothing was ever sent, so no lookup was needed
    assert ("worker", "SUBMITTING", "SUBMITTING") in sources(order)
    assert len(tagged(kite_orders(fleet["demo"]), order.kite_tag)) == 1


def test_a_worker_that_died_after_the_kite_call_is_adopted_not_repeated(desk, fleet) -> None:
    trader, option = desk
    order = market(trader, option)
    # the dead worker's call reached Kite; it died before recording the answer
    kite_client_for(fleet["demo"]).place_order(
        variety="regular", exchange=option.exchange, tradingsymbol=option.tradingsymbol, transaction_type="BUY",
        quantity=65, product="NRML", order_type="MARKET", tag=order.kite_tag,
    )  # fmt: skip
    dead = timezone.now() - timedelta(seconds=1)
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.SUBMITTING, claim_token="dead", lease_until=dead, placement_attempts=1
    )

    assert order_submit(order_id=order.pk).outcome == "adopted"

    order.refresh_from_db()
    [kite_order] = tagged(kite_orders(fleet["demo"]), order.kite_tag)
    assert (order.broker_order_id, order.status) == (kite_order["order_id"], OrderStatus.COMPLETE)


def test_a_live_lease_keeps_a_second_delivery_away(desk) -> None:
    trader, option = desk
    order = market(trader, option)
    held = timezone.now() + timedelta(seconds=5)
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.SUBMITTING, claim_token="busy", lease_until=held
    )

    result = order_submit(order_id=order.pk)

    assert result.outcome == "leased" and 4 < result.retry_in <= 5.5
    assert Order.objects.get(pk=order.pk).claim_token == "busy"


def test_an_order_not_sent_by_its_deadline_fails(desk, fleet, settings) -> None:
    trader, option = desk
    order = market(trader, option)
    settings.ORDER_SUBMIT_DEADLINE_S = 0

    assert order_submit(order_id=order.pk).outcome == "failed"
    order.refresh_from_db()
    assert "Not sent" in order.status_message
    assert tagged(kite_orders(fleet["demo"]), order.kite_tag) == []


def test_an_account_disabled_after_acceptance_sends_nothing(desk, fleet) -> None:
    trader, option = desk
    order = market(trader, option)
    BrokerAccount.objects.filter(name="demo").update(enabled=False)

    assert order_submit(order_id=order.pk).outcome == "failed"
    assert "disabled" in Order.objects.get(pk=order.pk).status_message
