"""The submission service behind ``orders.submit``: get one PENDING order into Kite exactly once.

Exactly once rests on three things:

* **the lease** — a conditional update claims the order (PENDING, or SUBMITTING under a lapsed lease,
  → SUBMITTING with a fresh claim token); every later write is conditional on that token, and the
  lease is renewed to outlive each Kite call, so two deliveries of the task never both talk to Kite;
* **the tag** — every order carries its own unique tag, and every attempt after the first
  (``placement_attempts > 0``) looks the tag up in ``kite.orders()`` before placing, adopting what Kite
  has: a timeout, a reset, a 5xx or a killed worker can never turn into a second order;
* **Kite's answer decides** — rejections are final (REJECTED with Kite's message); a refused token is
  final (FAILED, nothing was placed); 429 and an open breaker wait in PENDING; only an unknown
  outcome is retried, with backoff, and only after the lookup.
"""

import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kiteconnect import KiteConnect
from structlog.contextvars import bound_contextvars

from orders import metrics
from orders.breaker import CircuitBreaker
from orders.guard import account_token_refused
from orders.kite import (
    KITE_CALL_ERRORS,
    KiteOrderFacts,
    KiteOutcome,
    MalformedKiteOrder,
    classify,
    describe,
    facts_from_payload,
    place_params,
)
from orders.kite_sync import order_apply_kite_facts
from orders.models import Order, OrderEvent
from orders.ratelimit import order_bucket, request_bucket
from orders.redis_io import orders_redis
from orders.states import AT_KITE, FINAL, OrderStatus
from ticks.kite import kite_client_for
from ticks.models import BrokerAccount

logger = logging.getLogger(__name__)
Source = OrderEvent.Source


@dataclass(frozen=True, slots=True)
class SubmitResult:
    outcome: str
    retry_in: float | None = None  # the task re-runs itself after this many seconds


def lease_seconds() -> float:
    """Long enough for one Kite call (its timeout) and the writes around it."""
    return settings.KITE_HTTP_TIMEOUT + settings.ORDER_LEASE_MARGIN_S


def order_submit(*, order_id: int) -> SubmitResult:
    order = Order.objects.select_related("account", "parent").filter(pk=order_id).first()
    if order is None:
        return SubmitResult("missing")
    with bound_contextvars(**_log_ids(order)):
        result = _order_submit(order)
        logger.info("order submission: %s", result.outcome)
    return result


def _log_ids(order: Order) -> dict[str, object]:
    """The ids every log line of the submission carries (README "Logs"); a slice has its parent's key."""
    first = order.parent or order
    return {"order_id": order.pk, "idempotency_key": first.idempotency_key, "account_id": order.account_id}


def _order_submit(order: Order) -> SubmitResult:
    order_id = order.pk
    waiting = _not_claimable(order)
    if waiting is not None:
        return waiting
    client = orders_redis()
    breaker = CircuitBreaker(client, order.account_id)
    paused = breaker.allow()
    if paused:
        return _wait_in_pending(
            order, paused, f"waiting: Kite calls for account {order.account} paused (circuit open)"
        )
    token = _claim(order)
    if token is None:
        fresh = Order.objects.get(pk=order_id)
        return _not_claimable(fresh) or SubmitResult("contended", retry_in=1.0)
    order.refresh_from_db()
    return _Submission(order, token, breaker, client).run()


def _not_claimable(order: Order) -> SubmitResult | None:
    now = timezone.now()
    if order.status in FINAL or order.status in AT_KITE:
        return SubmitResult("done")
    if order.status == OrderStatus.PENDING and order.next_attempt_at > now:
        return SubmitResult("not_due", retry_in=_capped((order.next_attempt_at - now).total_seconds()))
    if order.status == OrderStatus.SUBMITTING and order.lease_until is not None and order.lease_until >= now:
        return SubmitResult("leased", retry_in=(order.lease_until - now).total_seconds() + 0.5)
    return None


def _capped(seconds: float) -> float:
    return max(0.1, min(seconds, settings.ORDER_RETRY_MAX_S))


def _wait_in_pending(order: Order, seconds: float, reason: str) -> SubmitResult:
    now = timezone.now()
    Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
        next_attempt_at=now + timedelta(seconds=seconds), status_message=reason, updated_at=now
    )
    return SubmitResult("waiting", retry_in=_capped(seconds))


def _claim(order: Order) -> str | None:
    """PENDING (due) or SUBMITTING under a lapsed lease → SUBMITTING, ours; None when someone else has it."""
    token = secrets.token_hex(16)
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds())
    claimable = (
        (OrderStatus.PENDING, Q(status=OrderStatus.PENDING, next_attempt_at__lte=now), "claimed"),
        (
            OrderStatus.SUBMITTING,
            Q(status=OrderStatus.SUBMITTING, lease_until__lt=now),
            "took over a lapsed lease",
        ),
    )
    for status_from, condition, message in claimable:
        with transaction.atomic():
            claimed = Order.objects.filter(condition, pk=order.pk).update(
                status=OrderStatus.SUBMITTING, claim_token=token, lease_until=lease_until, updated_at=now
            )
            if claimed:
                OrderEvent.objects.create(
                    order_id=order.pk,
                    source=Source.WORKER,
                    status_from=status_from,
                    status_to=OrderStatus.SUBMITTING,
                    message=message,
                    data={"placement_attempts": order.placement_attempts},
                )
                return token
    return None


class _Submission:
    """One claimed attempt: verify an earlier attempt, check the gates, place, and record the answer."""

    def __init__(self, order: Order, token: str, breaker: CircuitBreaker, client: redis.Redis) -> None:
        self.order = order
        self.account: BrokerAccount = order.account
        self.token = token
        self.breaker = breaker
        self.redis = client
        self.kite: KiteConnect = kite_client_for(self.account)

    def run(self) -> SubmitResult:
        if self.order.placement_attempts > 0:
            verified = self._verify_earlier_attempt()
            if verified is not None:
                return verified
        blocked = self._blocked()
        if blocked is not None:
            return blocked
        wait = order_bucket(self.redis, self.account.api_key).acquire(settings.ORDER_RATE_MAX_WAIT_S)
        if wait:
            return self._release(wait, "waiting for Kite's order rate limit")
        if settings.ORDER_SUBMIT_HOLD_S:  # test hook: widen the window between claim and Kite call
            time.sleep(settings.ORDER_SUBMIT_HOLD_S)
        return self._place()

    # -- before placing ------------------------------------------------------------------------------

    def _verify_earlier_attempt(self) -> SubmitResult | None:
        """An earlier attempt's outcome is unknown: find the tag at Kite before anything else."""
        wait = request_bucket(self.redis, self.account.api_key).acquire(settings.ORDER_RATE_MAX_WAIT_S)
        if wait:
            return self._release(wait, "waiting for Kite's request rate limit to look the tag up")
        if not self._renew(count_attempt=False):
            return SubmitResult("lease_lost")
        try:
            rows = self.kite.orders()
        except KITE_CALL_ERRORS as error:
            return self._unknown_or_final(error, looking_up=True)
        self.breaker.record_success()
        found = _find_tag(rows, self.order.kite_tag)
        if found is None:
            return None
        metrics.ADOPTED.inc()
        order_apply_kite_facts(order_id=self.order.pk, facts=found, source=Source.RECONCILE)
        return SubmitResult("adopted")

    def _blocked(self) -> SubmitResult | None:
        """Reasons to stop for good now that Kite is known not to have the order."""
        account = BrokerAccount.objects.only("enabled", "health").get(pk=self.account.pk)
        if not account.enabled:
            return self._finish(
                OrderStatus.FAILED, f"Account {self.account.name} is disabled; not sent to Kite."
            )
        if account.health == BrokerAccount.Health.TOKEN_EXPIRED:
            return self._finish(
                OrderStatus.FAILED,
                f"Kite refused account {self.account.name}'s access token; not sent. Log in again and resubmit.",
            )
        age = (timezone.now() - self.order.created_at).total_seconds()
        if age > settings.ORDER_SUBMIT_DEADLINE_S:
            return self._finish(
                OrderStatus.FAILED,
                f"Not sent: Kite could not be reached within {settings.ORDER_SUBMIT_DEADLINE_S:.0f} s of acceptance.",
            )
        return None

    # -- placing -------------------------------------------------------------------------------------

    def _place(self) -> SubmitResult:
        if not self._renew(count_attempt=True):
            return SubmitResult("lease_lost")
        try:
            broker_order_id = self.kite.place_order(**place_params(self.order))
        except KITE_CALL_ERRORS as error:
            return self._unknown_or_final(error, looking_up=False)
        self.breaker.record_success()
        metrics.KITE_CALLS.labels("placed").inc()
        metrics.TO_KITE.observe((timezone.now() - self.order.created_at).total_seconds())
        order_apply_kite_facts(order_id=self.order.pk, facts=_acknowledged(str(broker_order_id)),
                               source=Source.KITE_RESPONSE)  # fmt: skip
        return SubmitResult("placed")

    def _unknown_or_final(self, error: Exception, *, looking_up: bool) -> SubmitResult:
        outcome = classify(error)
        metrics.KITE_CALLS.labels(f"{'lookup_' if looking_up else ''}{outcome}").inc()
        if outcome is KiteOutcome.UNKNOWN:
            if self.breaker.record_failure():
                metrics.BREAKER_OPENED.labels(self.account.name).inc()
                logger.warning("account %s: circuit opened after %s", self.account.name, describe(error))
            delay = _backoff(self.order.placement_attempts)
            return self._release(
                delay, f"Kite outcome unknown ({describe(error)}); the tag is looked up before a retry"
            )
        self.breaker.record_success()
        if outcome is KiteOutcome.THROTTLED:
            return self._release(1.0 + random.random(), "Kite answered 429 Too many requests; not placed")
        if outcome is KiteOutcome.TOKEN:
            account_token_refused(self.account, error)
            if looking_up:  # the earlier attempt cannot be verified: keep waiting for a new token
                return self._release(settings.ORDER_RETRY_MAX_S, f"cannot look the tag up: {describe(error)}")
            return self._finish(
                OrderStatus.FAILED,
                f"Kite refused the access token ({describe(error)}): not placed. Log in again.",
            )
        if looking_up:  # Kite refused the order-book read itself; nothing to adopt from it
            return self._release(
                _backoff(self.order.placement_attempts), f"order book read failed: {describe(error)}"
            )
        return self._finish(
            OrderStatus.REJECTED, str(error), source=Source.KITE_RESPONSE, kite_status="REJECTED"
        )

    # -- conditional writes (all need our claim token) -----------------------------------------------

    def _mine(self) -> Q:
        return Q(pk=self.order.pk, status=OrderStatus.SUBMITTING, claim_token=self.token)

    def _renew(self, *, count_attempt: bool) -> bool:
        now = timezone.now()
        changes = {"lease_until": now + timedelta(seconds=lease_seconds()), "updated_at": now}
        if count_attempt:
            changes["placement_attempts"] = F("placement_attempts") + 1
        with transaction.atomic():
            renewed = Order.objects.filter(self._mine()).update(**changes)
            if renewed and count_attempt:
                self.order.placement_attempts += 1
                OrderEvent.objects.create(
                    order_id=self.order.pk,
                    source=Source.WORKER,
                    status_from=OrderStatus.SUBMITTING,
                    status_to=OrderStatus.SUBMITTING,
                    message=f"sending to Kite (attempt {self.order.placement_attempts})",
                    data={"tag": self.order.kite_tag},
                )
        return bool(renewed)

    def _release(self, retry_in: float, reason: str) -> SubmitResult:
        now = timezone.now()
        with transaction.atomic():
            released = Order.objects.filter(self._mine()).update(
                status=OrderStatus.PENDING,
                claim_token="",
                lease_until=None,
                next_attempt_at=now + timedelta(seconds=retry_in),
                status_message=reason,
                updated_at=now,
            )
            if released:
                OrderEvent.objects.create(
                    order_id=self.order.pk,
                    source=Source.WORKER,
                    status_from=OrderStatus.SUBMITTING,
                    status_to=OrderStatus.PENDING,
                    message=reason,
                    data={"retry_in_s": round(retry_in, 2)},
                )
        return SubmitResult(
            "retry" if released else "superseded", retry_in=_capped(retry_in) if released else None
        )

    def _finish(
        self, status: OrderStatus, message: str, *, source: str = Source.WORKER, kite_status: str = ""
    ) -> SubmitResult:
        now = timezone.now()
        with transaction.atomic():
            finished = Order.objects.filter(self._mine()).update(
                status=status,
                status_message=message[:1000],
                kite_status=kite_status,
                pending_quantity=0,
                claim_token="",
                lease_until=None,
                updated_at=now,
            )
            if finished:
                OrderEvent.objects.create(
                    order_id=self.order.pk,
                    source=source,
                    status_from=OrderStatus.SUBMITTING,
                    status_to=status,
                    kite_status=kite_status,
                    message=message[:1000],
                )
        return SubmitResult(status.lower() if finished else "superseded")


def _acknowledged(broker_order_id: str) -> KiteOrderFacts:
    """place_order's answer: Kite has the order under this id; its status is not known yet."""
    return KiteOrderFacts(
        order_id=broker_order_id,
        tags=(),
        kite_status="",
        status_message="",
        filled_quantity=0,
        pending_quantity=0,
        average_price=Decimal(0),
        quantity=None,
        price=None,
        trigger_price=None,
        order_type=None,
        updated_at=None,
    )


def _find_tag(rows: list[dict[str, object]], tag: str) -> KiteOrderFacts | None:
    for row in rows:
        try:
            facts = facts_from_payload(row)
        except MalformedKiteOrder:
            continue
        if tag in facts.tags:
            return facts
    return None


def _backoff(attempts: int) -> float:
    """Exponential with jitter: 2, 4, 8 … s (ORDER_RETRY_BASE_S), capped at ORDER_RETRY_MAX_S."""
    base = settings.ORDER_RETRY_BASE_S * 2 ** max(attempts - 1, 0)
    return min(settings.ORDER_RETRY_MAX_S, base) * random.uniform(1.0, 1.5)
