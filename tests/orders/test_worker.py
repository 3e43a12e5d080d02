"""Exactly once with real processes: kitesim, Redis, Celery workers on the orders queue, SIGKILL.

Each test counts Kite's own order book (by our per-order tag) at the end: one Kite order per order.
"""

import asyncio
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests
from django.db import connection
from rest_framework.test import APIClient

from kitesim.testing import KitesimThread
from orders.breaker import CircuitBreaker
from orders.kite_sync import orders_reconcile
from orders.models import Order
from orders.redis_io import orders_redis
from orders.states import FINAL, OrderStatus
from tests.orders.conftest import Trader, limit_body, make_trader
from tests.orders.kitebook import atm_option, faults, kite_orders, tagged
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.models import BrokerAccount, Instrument
from workers.control import feed_status_key
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = pytest.mark.integration

FAST_ORDERS = {
    "KITE_HTTP_TIMEOUT": "2",
    "ORDER_LEASE_MARGIN_S": "1",  # lease: 3 s
    "ORDER_RETRY_BASE_S": "0.3",
    "ORDER_RETRY_MAX_S": "3",
    "ORDER_BREAKER_FAILURES": "3",
    "ORDER_BREAKER_RESET_S": "2",
    "ORDER_STUCK_GRACE_S": "1",
    "ORDER_SWEEP_S": "1",
    "ORDER_RECONCILE_S": "1",
}


class Desk:
    def __init__(self, fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess]) -> None:
        self.account = fleet["demo"]
        self.trader: Trader = make_trader(fleet["demo"])
        self.option: Instrument = atm_option()
        self._start = start_worker

    def worker(self, *, beat: bool = False, **env: str) -> WorkerProcess:
        return self._start(beat=beat, queues="orders", **{**FAST_ORDERS, **env})

    def market(self, key: str) -> Order:
        response = self.trader.place(limit_body(self.option, order_type="MARKET", price=None), key=key)
        assert response.status_code == 201, response.json()
        return Order.objects.get(pk=response.json()["id"])

    def settled(self, *orders: Order) -> Callable[[], bool]:
        ids = [order.pk for order in orders]
        return lambda: Order.objects.filter(pk__in=ids, status__in=FINAL).count() == len(ids)

    def at_kite(self, order: Order) -> Callable[[], bool]:
        return lambda: Order.objects.filter(pk=order.pk, broker_order_id__isnull=False).exists()

    def final_state(self, order: Order) -> Order:
        """Kite's state of the order now (a reconcile poll from here: the tests' workers may run no beat)."""
        orders_reconcile()
        order.refresh_from_db()
        return order

    def kite_count(self, order: Order) -> int:
        return len(tagged(kite_orders(self.account), order.kite_tag))


@pytest.fixture
def desk(fleet: dict[str, BrokerAccount], start_worker: Callable[..., WorkerProcess], settings) -> Desk:
    settings.MARKET_CLOCK = "kitesim"
    return Desk(fleet, start_worker)


def _kill_pool_children(worker: WorkerProcess) -> None:
    """SIGKILL the prefork children (the one running the task among them); the main process survives."""
    children = subprocess.run(
        ["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True, check=False
    )
    for pid in children.stdout.split():
        os.kill(int(pid), signal.SIGKILL)


def _kill(worker: WorkerProcess, how: str) -> None:
    if how == "child":
        _kill_pool_children(worker)
    else:
        worker.kill()


def _streaming(client: redis.Redis, account_id: int) -> bool:
    """The account's feed reports a connection that has received frames (so order updates arrive too)."""
    raw = client.get(feed_status_key(account_id))
    return raw is not None and json.loads(raw)["last_frame_at"] > 0


def _claimed_not_sent(order: Order) -> bool:
    order.refresh_from_db()
    return order.status == OrderStatus.SUBMITTING and order.placement_attempts == 0


def test_an_order_flows_through_a_worker_to_kite_and_its_final_state(desk: Desk) -> None:
    desk.worker(beat=True)
    order = desk.market("k1")

    until(desk.settled(order), timeout=30)

    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (OrderStatus.COMPLETE, 65)
    assert desk.kite_count(order) == 1


def test_duplicate_posts_sequential_and_concurrent_make_one_kite_order(desk: Desk) -> None:
    desk.worker()
    body = limit_body(desk.option, order_type="MARKET", price=None)
    codes: list[int] = []

    def post() -> None:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {desk.trader.key}")
        try:
            codes.append(
                api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key").status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes += [desk.trader.place(body, key="same-key").status_code for _ in range(5)]

    assert sorted(codes) == [200] * 24 + [201]
    order = Order.objects.get()
    until(lambda: Order.objects.filter(pk=order.pk, broker_order_id__isnull=False).exists(), timeout=30)
    assert desk.kite_count(order) == 1


def test_a_timed_out_response_leaves_one_kite_order_which_is_adopted(
    desk: Desk, kitesim: KitesimThread
) -> None:
    desk.worker()  # no beat: the submission itself must find the order by its tag
    faults(kitesim, order_timeout_next=1)  # booked at Kite, the answer never comes
    order = desk.market("k1")

    until(desk.settled(order), timeout=40)

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETE
    assert desk.kite_count(order) == 1
    messages = list(order.events.values_list("message", flat=True))
    assert any("outcome unknown (ReadTimeout" in message for message in messages)
    assert order.events.filter(source="reconcile").exists()  # adopted by tag, not placed again
    assert order.placement_attempts == 1


@pytest.mark.parametrize("how", ["child", "whole"])
def test_a_worker_killed_before_the_kite_call_leaves_exactly_one_kite_order(desk: Desk, how: str) -> None:
    first = desk.worker(ORDER_SUBMIT_HOLD_S="2.5")  # claims, then pauses before calling Kite
    order = desk.market("k1")
    until(lambda: _claimed_not_sent(order), timeout=20)

    _kill(first, how)
    assert desk.kite_count(order) == 0  # killed before the call
    if how == "whole":  # nothing redelivers a whole worker's message soon: the sweeper finds the order
        desk.worker(beat=True)

    until(desk.at_kite(order), timeout=45)
    assert desk.final_state(order).status == OrderStatus.COMPLETE
    assert desk.kite_count(order) == 1
    assert order.placement_attempts == 1  # the dead worker never sent it
    assert order.events.filter(message="took over a lapsed lease").exists()


@pytest.mark.parametrize("how", ["child", "whole"])
def test_a_worker_killed_after_the_kite_call_leaves_exactly_one_kite_order(
    desk: Desk, kitesim: KitesimThread, how: str
) -> None:
    assert kitesim.state is not None
    updates: asyncio.Queue[dict[str, Any]] = kitesim.call(kitesim.state.order_updates.subscribe, "demo")
    faults(kitesim, rest_latency_ms=3000)  # Kite books at once and answers 3 s later
    first = desk.worker(KITE_HTTP_TIMEOUT="6")
    order = desk.market("k1")
    until(lambda: kitesim.call(updates.qsize) > 0, timeout=20)  # it is in Kite's book

    _kill(first, how)
    faults(kitesim, rest_latency_ms=0)
    if how == "whole":
        desk.worker(beat=True)

    until(desk.at_kite(order), timeout=45)
    assert desk.final_state(order).status == OrderStatus.COMPLETE
    assert desk.kite_count(order) == 1
    assert order.placement_attempts == 1  # found by tag, never sent twice


def test_5xx_and_429_bursts_back_off_open_and_close_the_breaker_without_duplicates(
    desk: Desk, kitesim: KitesimThread
) -> None:
    desk.worker()
    breaker = CircuitBreaker(orders_redis(), desk.account.pk)
    faults(kitesim, rest_5xx_next=8)
    orders = [desk.market(f"5xx-{n}") for n in range(3)]

    until(lambda: breaker.state().opened >= 1, timeout=30)
    waiting = Order.objects.filter(pk__in=[o.pk for o in orders]).exclude(broker_order_id__isnull=False)
    assert all(
        o.status in (OrderStatus.PENDING, OrderStatus.SUBMITTING) for o in waiting
    )  # waiting, not failed

    until(lambda: Order.objects.filter(broker_order_id__isnull=False).count() == 3, timeout=40)
    opened = breaker.state().opened  # each failed half-open probe opened it again
    faults(kitesim, rest_429_next=6)
    orders += [desk.market(f"429-{n}") for n in range(3)]
    until(lambda: Order.objects.filter(broker_order_id__isnull=False).count() == 6, timeout=40)

    assert breaker.state().state == "closed"
    assert breaker.state().opened == opened  # 429s belong to the rate limiter, not the breaker
    book = kite_orders(desk.account)
    assert [len(tagged(book, o.kite_tag)) for o in orders] == [1] * 6
    messages = list(
        Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("events__message", flat=True)
    )
    assert any("outcome unknown" in m for m in messages) and any("429" in m for m in messages)


def test_an_expired_token_fails_the_order_with_a_clear_reason(desk: Desk, kitesim: KitesimThread) -> None:
    desk.worker()
    requests.post(
        f"{kitesim.root}/_sim/expire_tokens", json={"api_key": "demo"}, timeout=5
    ).raise_for_status()
    order = desk.market("k1")

    until(desk.settled(order), timeout=30)

    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert "refused the access token" in order.status_message
    assert BrokerAccount.objects.get(pk=desk.account.pk).health == BrokerAccount.Health.TOKEN_EXPIRED


def test_kite_websocket_updates_reach_orders_through_the_feed(
    desk: Desk, start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    feed_plan_refresh(client=redis_client)
    start_worker()  # feeds
    desk.worker()  # orders, no beat: no reconcile polls, so only the WebSocket can move the order
    feed_supervise(client=redis_client)
    until(lambda: _streaming(redis_client, desk.account.pk), timeout=30)
    resting = desk.trader.place(limit_body(desk.option, price=0.05), key="k1").json()["id"]

    until(lambda: Order.objects.filter(pk=resting, status=OrderStatus.OPEN).exists(), timeout=30)
    assert desk.trader.api.delete(f"/api/v1/orders/{resting}").status_code == 202
    until(lambda: Order.objects.filter(pk=resting, status=OrderStatus.CANCELLED).exists(), timeout=30)

    events = list(Order.objects.get(pk=resting).events.values_list("source", "status_to"))
    assert ("websocket", "OPEN") in events and ("websocket", "CANCELLED") in events
