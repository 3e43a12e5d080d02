"""Kite's view of orders: responses, WebSocket updates and reconcile polls applied idempotently
(never backwards), and the sweep that re-enqueues orders stuck in PENDING or SUBMITTING."""

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orders import metrics
from orders.errors import KiteCallError
from orders.guard import kite_call
from orders.kite import KiteOrderFacts, MalformedKiteOrder, facts_from_payload
from orders.models import Order
from orders.selectors import LIVE_AT_KITE
from orders.services import SUBMIT_QUEUE, Source, order_event_add, orders_enqueue
from orders.states import OrderStatus, Progress, is_newer
from ticks.models import BrokerAccount

logger = logging.getLogger(__name__)


def order_apply_kite_update(*, account_id: int, payload: Mapping[str, Any], source: str) -> bool:
    """A Kite order object (WebSocket ``data`` or an order-book row) for one of our orders, if it is ours.

    True when it moved the order forward; duplicates and stale (out-of-order) updates change nothing.
    """
    try:
        facts = facts_from_payload(payload)
    except MalformedKiteOrder as malformed:
        logger.warning("account %d: ignored a malformed Kite order update: %s", account_id, malformed)
        return False
    order_id = (
        Order.objects.filter(account_id=account_id, broker_order_id=facts.order_id)
        .values_list("pk", flat=True)
        .first()
        or Order.objects.filter(account_id=account_id, kite_tag__in=facts.tags)
        .values_list("pk", flat=True)
        .first()
    )
    if order_id is None:
        return False  # placed elsewhere (Kite web, another app): not ours to track
    return order_apply_kite_facts(order_id=order_id, facts=facts, source=source)


def order_apply_kite_facts(*, order_id: int, facts: KiteOrderFacts, source: str) -> bool:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.broker_order_id and order.broker_order_id != facts.order_id:
            metrics.DUPLICATE_SUSPECTED.inc()
            logger.error("order %d is Kite order %s, yet Kite also shows %s with its tag",
                         order.pk, order.broker_order_id, facts.order_id)  # fmt: skip
            return False
        current = Progress(OrderStatus(order.status), order.filled_quantity, order.kite_updated_at)
        if not is_newer(current, facts.progress):
            return False
        if current.status == OrderStatus.FAILED:
            logger.error("order %d was FAILED, but Kite has it as %s: adopting", order.pk, facts.order_id)
        _take_facts(order, facts)
        order.save()
        order_event_add(
            order,
            source,
            current.status,
            order.status,
            facts.status_message,
            _event_data(facts),
            facts.kite_status,
        )
    return True


def _take_facts(order: Order, facts: KiteOrderFacts) -> None:
    now = timezone.now()
    order.status = facts.status
    order.broker_order_id = facts.order_id
    order.kite_status = facts.kite_status
    order.status_message = facts.status_message or order.status_message
    order.filled_quantity = facts.filled_quantity
    order.pending_quantity = facts.pending_quantity if facts.kite_status else order.quantity
    order.average_price = facts.average_price
    order.kite_updated_at = facts.updated_at or order.kite_updated_at
    order.quantity = facts.quantity or order.quantity
    order.order_type = facts.order_type or order.order_type
    if facts.kite_status:  # an order object (not a bare place response): its prices are Kite's truth
        order.price = facts.price
        order.trigger_price = facts.trigger_price
    order.claim_token, order.lease_until = "", None
    order.placed_at = order.placed_at or now
    order.updated_at = now


def _event_data(facts: KiteOrderFacts) -> dict[str, Any]:
    return {
        "order_id": facts.order_id,
        "kite_status": facts.kite_status,
        "filled_quantity": facts.filled_quantity,
        "average_price": str(facts.average_price),
        "kite_updated_at": facts.updated_at.isoformat() if facts.updated_at else None,
    }


def orders_reconcile() -> int:
    """Beat: poll ``kite.orders()`` once per account with live orders and apply what changed.

    Accounts whose token Kite refused are skipped until an operator saves a new one.
    """
    account_ids = Order.objects.filter(LIVE_AT_KITE).values_list("account_id", flat=True).distinct()
    accounts = BrokerAccount.objects.filter(pk__in=list(account_ids), enabled=True).exclude(
        health=BrokerAccount.Health.TOKEN_EXPIRED
    )
    return sum(account_orders_reconcile(account=account) for account in accounts)


def account_orders_reconcile(*, account: BrokerAccount) -> int:
    """One order-book poll for the account; returns how many of our orders moved forward."""
    try:
        rows = kite_call(account, lambda kite: kite.orders())
    except KiteCallError as error:
        logger.warning("account %s: reconcile skipped: %s", account.name, error.message)
        return 0
    by_id: dict[str, KiteOrderFacts] = {}
    by_tag: dict[str, KiteOrderFacts] = {}
    for row in rows:
        try:
            facts = facts_from_payload(row)
        except MalformedKiteOrder:
            continue
        by_id[facts.order_id] = facts
        by_tag.update(dict.fromkeys(facts.tags, facts))
    ours = Order.objects.filter(LIVE_AT_KITE, account=account).values_list(
        "pk", "broker_order_id", "kite_tag"
    )
    moved = 0
    for order_id, broker_order_id, kite_tag in ours:
        facts = by_id.get(broker_order_id or "") or by_tag.get(kite_tag)
        if facts is not None:
            moved += order_apply_kite_facts(order_id=order_id, facts=facts, source=Source.RECONCILE)
    return moved


def orders_sweep_stuck(*, now: datetime | None = None) -> list[int]:
    """Beat: re-enqueue orders nobody is working on (message lost in a Redis restart, worker killed).

    An order that may already be at Kite is first reconciled by tag (one order-book poll per account),
    so what Kite has is adopted rather than re-sent; the submit task looks the tag up again anyway.
    Overdue PENDING orders are left alone while the orders queue has a backlog: their messages are
    most likely still in it, and re-sending them would only double the backlog.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ORDER_STUCK_GRACE_S)
    stuck = _stuck(cutoff, pending=not submissions_backlogged()) & Q(enqueued_at__lt=cutoff)
    rows = list(Order.objects.filter(stuck).values_list("pk", "account_id", "placement_attempts"))
    if not rows:
        return []
    verify = {account_id for _, account_id, attempts in rows if attempts > 0}
    for account in BrokerAccount.objects.filter(pk__in=verify, enabled=True):
        account_orders_reconcile(account=account)
    # One conditional update per order: of two sweeps running at once, only one re-enqueues it.
    again = [pk for pk, _, _ in rows if Order.objects.filter(stuck, pk=pk).update(enqueued_at=now)]
    orders_enqueue(again)
    if again:
        logger.warning("re-enqueued %d stuck order(s): %s", len(again), again[:20])
        metrics.REENQUEUED.inc(len(again))
    return again


def submissions_backlogged() -> bool:
    """Whether messages wait on the orders queue (a kombu queue declare reports its depth)."""
    with current_app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(queue=SUBMIT_QUEUE).message_count > 0


def _stuck(cutoff: datetime, *, pending: bool) -> Q:
    """SUBMITTING under a lease that lapsed before ``cutoff`` (and, with ``pending``, PENDING and due by then)."""
    lapsed = Q(status=OrderStatus.SUBMITTING, lease_until__lt=cutoff)
    return (lapsed | Q(status=OrderStatus.PENDING, next_attempt_at__lt=cutoff)) if pending else lapsed
