"""Writes for orders: accept, modify and cancel them.

Submission itself (getting a PENDING order into Kite exactly once) is orders.submission; applying
Kite's view of orders and recovering stuck ones is orders.kite_sync.
"""

import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import kombu.exceptions
import redis
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from structlog.contextvars import bound_contextvars

from orders import metrics
from orders.errors import TradingNotPermittedError
from orders.guard import kite_call
from orders.lookup_cache import LookupCache
from orders.models import Order, OrderEvent
from orders.selectors import ACCOUNT_SECRETS, ClientUser, instrument_for_order, permitted_account
from orders.states import AT_KITE, FINAL, OrderStatus
from orders.validation import (
    MAX_MODIFICATIONS,
    InstrumentFacts,
    OrderInvalid,
    OrderTerms,
    Placement,
    validate_modify,
    validate_place,
)
from tickerproject.exceptions import ApplicationError, ConflictError
from ticks.models import BrokerAccount, Instrument

logger = logging.getLogger(__name__)

SUBMIT_TASK = "orders.submit"
SUBMIT_QUEUE = "orders"  # CELERY_TASK_ROUTES sends orders.* here
APPLY_KITE_UPDATE_TASK = "orders.apply_kite_update"
Source = OrderEvent.Source
# (client id, account name) -> the account, while the client may place orders on it (README "Orders").
TRADABLE_ACCOUNTS: LookupCache[tuple[int, str], BrokerAccount] = LookupCache(
    lambda: settings.ORDER_LOOKUP_CACHE_S
)


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    account: str
    terms: OrderTerms
    tag: str = ""

    def fingerprint(self) -> str:
        """The request body's identity, for "same Idempotency-Key, same body?" (formatting-blind)."""
        terms = {
            name: value.normalize().to_eng_string() if isinstance(value, Decimal) else value
            for name, value in asdict(self.terms).items()
        }
        canonical = json.dumps({"account": self.account, "tag": self.tag, **terms}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PlaceResult:
    order: Order
    created: bool
    slice_ids: list[int]  # the other slices of an auto-sliced order


# --- accepting orders ---------------------------------------------------------------------------


def order_place(
    *, client: ClientUser, idempotency_key: str, request: PlaceRequest, market_now: datetime
) -> PlaceResult:
    """Validate and store the order(s) as PENDING in one transaction; enqueue submission on commit.

    The idempotency key is unique per client in the database: a retry (or a concurrent duplicate)
    with the same body gets the original order back, with a different body a 409.
    """
    fingerprint = request.fingerprint()
    try:
        orders = _orders_accept(client, idempotency_key, fingerprint, request, market_now)
    except (ApplicationError, IntegrityError):
        # A new order pays for no lookup of its key: a used one fails the insert (unique constraint),
        # or the checks refused a retry that passed them when it was first sent (before the close, say).
        existing = _order_by_key(client, idempotency_key)
        if existing is None:
            raise
        return _replayed(existing, fingerprint)
    metrics.ACCEPTED.inc(len(orders))
    with bound_contextvars(order_id=orders[0].pk, idempotency_key=idempotency_key):  # README "Logs"
        logger.info("order accepted: %d order(s) PENDING", len(orders))
    return PlaceResult(order=orders[0], created=True, slice_ids=[order.pk for order in orders[1:]])


def _orders_accept(
    client: ClientUser, idempotency_key: str, fingerprint: str, request: PlaceRequest, market_now: datetime
) -> list[Order]:
    account = _tradable_account(client, request.account)
    terms = request.terms
    instrument = instrument_for_order(exchange=terms.exchange, tradingsymbol=terms.tradingsymbol)
    placement = _validated(terms, instrument, market_now)
    assert instrument is not None  # validate_place refuses a missing instrument
    with transaction.atomic():
        orders = _orders_create(client, idempotency_key, fingerprint, account, instrument, request, placement)
        order_ids = [order.pk for order in orders]
        transaction.on_commit(lambda: _orders_enqueue_after_commit(order_ids))
    return orders


def _orders_enqueue_after_commit(order_ids: list[int]) -> None:
    """The orders are stored: a broker that cannot take their messages now must not turn the client's
    answer into an error (told "error", a client re-sends without its key and trades twice).
    orders_sweep_stuck submits them once the broker is back, after ORDER_STUCK_GRACE_S."""
    try:
        orders_enqueue(order_ids)
    except (kombu.exceptions.OperationalError, redis.RedisError) as error:
        metrics.ENQUEUE_DEFERRED.inc(len(order_ids))
        logger.warning(
            "orders %s stored; submission left to the sweeper, broker unreachable (%s)", order_ids, error
        )


def _validated(terms: OrderTerms, instrument: Instrument | None, market_now: datetime) -> Placement:
    try:
        return validate_place(terms, _facts(instrument), market_now, max_slices=settings.ORDER_MAX_SLICES)
    except OrderInvalid as invalid:
        raise ApplicationError(invalid.message, field=invalid.field) from invalid


def orders_enqueue(order_ids: Iterable[int]) -> None:
    """Queue submission (``orders`` queue). A lost message is recovered by orders_sweep_stuck."""
    for order_id in order_ids:
        with bound_contextvars(order_id=order_id):  # the task's log lines carry it from its first
            _send(SUBMIT_TASK, [order_id])


def order_update_enqueue(*, account_id: int, payload: Mapping[str, Any]) -> None:
    """Hand a Kite ``{"type": "order"}`` message's data to the orders queue (called by the feeds)."""
    _send(APPLY_KITE_UPDATE_TASK, [account_id, dict(payload)])


def _send(task: str, args: list[Any]) -> None:
    # Nobody waits on these results (the tasks ignore them too). Otherwise send_task subscribes to each
    # task's result channel, on a new Redis connection in each new thread (under ASGI: every request).
    current_app.send_task(task, args=args, ignore_result=True)


def _order_by_key(client: ClientUser, idempotency_key: str) -> Order | None:
    return (
        Order.objects.filter(client_id=client.pk, idempotency_key=idempotency_key)
        .select_related("account")
        .defer(*ACCOUNT_SECRETS)
        .first()
    )


def _replayed(order: Order, fingerprint: str) -> PlaceResult:
    if order.request_fingerprint != fingerprint:
        raise ConflictError(
            "This Idempotency-Key was already used with a different request body.",
            extra={"order_id": order.pk},
        )
    return PlaceResult(order=order, created=False, slice_ids=list(order.slices.values_list("pk", flat=True)))


def _tradable_account(client: ClientUser, name: str) -> BrokerAccount:
    """The account when the client may place orders on it now; only such an answer is cached, so a
    granted permission, an enabled account or a new token counts at once, a revoked one within
    ORDER_LOOKUP_CACHE_S."""
    key = (client.pk, name)
    account = TRADABLE_ACCOUNTS.get(key)
    if account is not None:
        return account
    account = permitted_account(client=client, name=name)
    if account is None:
        raise TradingNotPermittedError(f"You may not trade on account {name!r}.", field="account")
    if not account.enabled:
        raise ApplicationError(f"Account {name!r} is disabled.", field="account")
    if account.health == BrokerAccount.Health.TOKEN_EXPIRED:
        raise ConflictError(
            f"Kite refused account {name!r}'s access token; an operator must log in again.", field="account"
        )
    TRADABLE_ACCOUNTS.put(key, account)
    return account


def _facts(instrument: Instrument | None) -> InstrumentFacts | None:
    if instrument is None:
        return None
    return InstrumentFacts(
        exchange=instrument.exchange,
        tradingsymbol=instrument.tradingsymbol,
        segment=instrument.segment,
        tick_size=instrument.tick_size,
        lot_size=instrument.lot_size,
        expiry=instrument.expiry,
        is_active=instrument.is_active,
        freeze_quantity=settings.ORDER_FREEZE_QUANTITIES.get(instrument.name),
    )


def _orders_create(
    client: ClientUser,
    idempotency_key: str,
    fingerprint: str,
    account: BrokerAccount,
    instrument: Instrument,
    request: PlaceRequest,
    placement: Placement,
) -> list[Order]:
    terms, now = request.terms, timezone.now()
    orders: list[Order] = []
    for quantity in placement.slices:
        first = orders[0] if orders else None
        orders.append(
            Order.objects.create(
                client_id=client.pk,
                account=account,
                instrument=instrument,
                parent=first,
                idempotency_key=idempotency_key if first is None else None,
                request_fingerprint=fingerprint if first is None else "",
                kite_tag=secrets.token_hex(10),  # 20 alphanumerics: Kite's tag limit
                tag=request.tag,
                exchange=terms.exchange,
                tradingsymbol=terms.tradingsymbol,
                variety=terms.variety,
                transaction_type=terms.transaction_type,
                order_type=terms.order_type,
                product=terms.product,
                validity=terms.validity,
                validity_ttl=terms.validity_ttl,
                quantity=quantity,
                price=terms.price,
                trigger_price=terms.trigger_price,
                iceberg_legs=terms.iceberg_legs,
                iceberg_quantity=placement.iceberg_quantity,
                pending_quantity=quantity,
                created_at=now,
                updated_at=now,
                next_attempt_at=now,
                enqueued_at=now,
            )
        )
    count = len(orders)
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order=order,
            at=now,
            source=Source.API,
            status_to=OrderStatus.PENDING,
            message="accepted" if count == 1 else f"accepted: slice {index} of {count}",
        )
        for index, order in enumerate(orders, start=1)
    )
    return orders


# --- modify and cancel --------------------------------------------------------------------------


def order_cancel(*, order: Order, source: str) -> bool:
    """Cancel: locally when Kite never saw the order, else at Kite. True when it is already CANCELLED
    (local); False when Kite was asked (its update brings CANCELLED)."""
    if (
        order.status == OrderStatus.PENDING
        and order.placement_attempts == 0
        and _cancel_unsent(order, source)
    ):
        order.refresh_from_db()
        return True
    order.refresh_from_db()
    _require_at_kite(order, "cancelled")
    kite_call(
        _kite_account(order),
        lambda kite: kite.cancel_order(variety=order.variety, order_id=order.broker_order_id),
    )
    order_event_add(order, source, order.status, order.status, "cancel requested at Kite")
    return False


def _cancel_unsent(order: Order, source: str) -> bool:
    now = timezone.now()
    with transaction.atomic():
        cancelled = Order.objects.filter(
            pk=order.pk, status=OrderStatus.PENDING, placement_attempts=0
        ).update(
            status=OrderStatus.CANCELLED,
            status_message="cancelled before it was sent to Kite",
            pending_quantity=0,
            updated_at=now,
        )
        if cancelled:
            order_event_add(
                order,
                source,
                OrderStatus.PENDING,
                OrderStatus.CANCELLED,
                "cancelled before it was sent to Kite",
            )
    return bool(cancelled)


def order_modify(*, order: Order, changes: Mapping[str, Any], market_now: datetime, source: str) -> Order:
    """Change quantity / price / trigger / order type / validity, before sending or at Kite."""
    if permitted_account(client=order.client, name=order.account.name) is None:
        raise TradingNotPermittedError(
            f"You may no longer trade on account {order.account.name!r}.", field="account"
        )
    if order.modification_count >= MAX_MODIFICATIONS:
        raise ConflictError(f"Kite allows at most {MAX_MODIFICATIONS} modifications of an order.")
    terms = replace(_terms_of(order), **changes)
    try:
        validate_modify(terms, _facts(order.instrument), market_now)
    except OrderInvalid as invalid:
        raise ApplicationError(invalid.message, field=invalid.field) from invalid
    fields = {name: getattr(terms, name) for name in changes}
    if (
        order.status == OrderStatus.PENDING
        and order.placement_attempts == 0
        and _modify_unsent(order, fields, source)
    ):
        order.refresh_from_db()
        return order
    order.refresh_from_db()
    _require_at_kite(order, "modified")
    kite_call(_kite_account(order), lambda kite: kite.modify_order(**_modify_params(order, terms)))
    _modified_at_kite(order, fields, source)
    order.refresh_from_db()
    return order


def _kite_account(order: Order) -> BrokerAccount:
    """The order's account with its Kite credentials (list and detail reads leave them out)."""
    return BrokerAccount.objects.get(pk=order.account_id)


def _terms_of(order: Order) -> OrderTerms:
    return OrderTerms(
        variety=order.variety,
        exchange=order.exchange,
        tradingsymbol=order.tradingsymbol,
        transaction_type=order.transaction_type,
        order_type=order.order_type,
        product=order.product,
        quantity=order.quantity,
        price=order.price,
        trigger_price=order.trigger_price,
        validity=order.validity,
        validity_ttl=order.validity_ttl,
        iceberg_legs=order.iceberg_legs,
    )


def _modify_params(order: Order, terms: OrderTerms) -> dict[str, Any]:
    params = {
        "variety": order.variety,
        "order_id": order.broker_order_id,
        "quantity": terms.quantity,
        "order_type": terms.order_type,
        "validity": terms.validity,
        "price": terms.price,
        "trigger_price": terms.trigger_price,
    }
    return {name: str(value) if isinstance(value, Decimal) else value for name, value in params.items()}


def _modify_unsent(order: Order, fields: dict[str, Any], source: str) -> bool:
    now = timezone.now()
    extra = {"pending_quantity": fields["quantity"]} if "quantity" in fields else {}
    with transaction.atomic():
        modified = Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, placement_attempts=0).update(
            **fields, **extra, modification_count=order.modification_count + 1, updated_at=now
        )
        if modified:
            order_event_add(
                order,
                source,
                OrderStatus.PENDING,
                OrderStatus.PENDING,
                "modified before it was sent to Kite",
                fields,
            )
    return bool(modified)


def _modified_at_kite(order: Order, fields: dict[str, Any], source: str) -> None:
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(
            **fields, modification_count=order.modification_count + 1, updated_at=timezone.now()
        )
        order_event_add(order, source, order.status, order.status, "modified at Kite", fields)


def _require_at_kite(order: Order, verb: str) -> None:
    status = OrderStatus(order.status)
    if status in FINAL:
        raise ConflictError(f"Order {order.pk} is {status}; it cannot be {verb}.")
    if status not in AT_KITE or not order.broker_order_id:
        raise ConflictError(
            f"Order {order.pk} is being sent to Kite; it can be {verb} in a few seconds.",
            extra={"retry_after": 2},
        )


def order_event_add(
    order: Order,
    source: str,
    status_from: str,
    status_to: str,
    message: str,
    data: Mapping[str, Any] | None = None,
    kite_status: str = "",
) -> None:
    OrderEvent.objects.create(
        order_id=order.pk,
        source=source,
        status_from=status_from,
        status_to=status_to,
        kite_status=kite_status,
        message=message,
        data=json.loads(json.dumps(dict(data or {}), default=str)),
    )
