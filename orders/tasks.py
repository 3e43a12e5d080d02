"""Celery tasks of the orders queue: thin shells over orders.submission, orders.services and orders.kite_sync."""

import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from orders import kite_sync, services
from orders.models import OrderEvent
from orders.submission import order_submit

logger = logging.getLogger(__name__)

# A submission makes at most two Kite calls (look the tag up, place), each bounded by KITE_HTTP_TIMEOUT,
# plus a rate-limit wait; the limits leave room for that and the database writes around them.
SUBMIT_SOFT_LIMIT_S = (
    2 * settings.KITE_HTTP_TIMEOUT + settings.ORDER_RATE_MAX_WAIT_S + settings.ORDER_SUBMIT_HOLD_S + 20
)


@shared_task(
    bind=True,
    name=services.SUBMIT_TASK,
    acks_late=True,  # a worker killed mid-task leaves the message to be delivered again ...
    reject_on_worker_lost=True,  # ... also when only its pool child dies; the lease and tag make that safe
    max_retries=500,  # each retry is a deliberate wait (rate limit, breaker, backoff); the sweeper is the backstop
    autoretry_for=(OperationalError,),  # "database is locked" under SQLite write contention
    retry_backoff=True,
    soft_time_limit=SUBMIT_SOFT_LIMIT_S,
    time_limit=SUBMIT_SOFT_LIMIT_S + 15,
    ignore_result=True,
)
def submit(self: Task, order_id: int) -> str:
    """Get one order into Kite exactly once (see orders.submission)."""
    result = order_submit(order_id=order_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.outcome


@shared_task(
    name=services.APPLY_KITE_UPDATE_TASK,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=20,
    time_limit=30,
    ignore_result=True,
)
def apply_kite_update(account_id: int, payload: dict[str, Any]) -> bool:
    """A Kite ``{"type": "order"}`` WebSocket message for one account, from its feed."""
    return kite_sync.order_apply_kite_update(
        account_id=account_id, payload=payload, source=OrderEvent.Source.WEBSOCKET
    )


@shared_task(name="orders.reconcile", ignore_result=True, soft_time_limit=60, time_limit=90)
def reconcile() -> int:
    """Beat: poll Kite's order book for accounts with live orders."""
    return kite_sync.orders_reconcile()


@shared_task(name="orders.sweep_stuck", ignore_result=True, soft_time_limit=60, time_limit=90)
def sweep_stuck() -> int:
    """Beat: re-enqueue orders stuck in PENDING/SUBMITTING, after reconciling them by tag."""
    return len(kite_sync.orders_sweep_stuck())
