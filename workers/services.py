"""The control plane's writes: plan the fleet, start missing feeds, reconcile drift."""

import json
import logging
from dataclasses import dataclass

import redis
from celery import current_app
from django.conf import settings
from django.db import transaction
from kiteconnect.exceptions import KiteException
from requests.exceptions import RequestException

from ticks.feeds.lease import lease_key
from ticks.feeds.metrics import FEED_DRIFT
from ticks.feeds.planner import AccountCapacity, Assignment, plan_assign
from ticks.kite import kite_client_for
from ticks.models import BrokerAccount, Instrument
from workers.control import CONTROL_CHANNEL, PLAN_VERSION_KEY, feed_starting_key, feed_status_key
from workers.desired import feed_desired
from workers.models import FeedAssignment, FeedPlan
from workers.selectors import feed_plan_current

logger = logging.getLogger(__name__)

PLANS_KEPT = 20


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def _healthy_accounts() -> list[BrokerAccount]:
    return list(BrokerAccount.objects.filter(enabled=True, health=BrokerAccount.Health.OK).order_by("pk"))


def _kite_ltp(instruments: list[Instrument]) -> dict[int, float]:
    """Fallback prices before any tick arrived: one Kite LTP call through the first healthy account."""
    keys = [f"{instrument.exchange}:{instrument.tradingsymbol}" for instrument in instruments]
    for account in _healthy_accounts():
        try:
            quotes = kite_client_for(account).ltp(keys)
        except (KiteException, RequestException) as error:
            logger.warning("ltp %s via %s failed: %s", keys, account, error)
            continue
        return {int(quote["instrument_token"]): float(quote["last_price"]) for quote in quotes.values()}
    return {}


def feed_plan_refresh(*, client: redis.Redis) -> FeedPlan:
    """Plan every desired token onto the healthy accounts, store it, and tell the feeds."""
    desired = feed_desired(redis_client=client, fallback_prices=_kite_ltp)
    accounts = [
        AccountCapacity(a.pk, True, a.max_connections, a.tokens_per_connection) for a in _healthy_accounts()
    ]
    current = feed_plan_current()
    previous = tuple(_assignments(current)) if current else None
    result = plan_assign(desired.groups, accounts, previous)
    errors = [*desired.problems, *(error.message for error in result.errors)]
    if current is not None and _same(current, previous, result.plan, errors):
        return current
    plan = _plan_store(result.plan, desired.modes, errors, len(desired.modes))
    client.set(PLAN_VERSION_KEY, plan.version)
    client.publish(CONTROL_CHANNEL, json.dumps({"action": "plan", "version": plan.version}))
    logger.info(
        "plan v%d: %d assignments, %d moved, errors: %s",
        plan.version,
        len(result.plan),
        len(result.moved),
        errors,
    )
    return plan


def _same(
    current: FeedPlan, previous: tuple[Assignment, ...] | None, new: tuple[Assignment, ...], errors: list[str]
) -> bool:
    """Nothing changed: keep the version, so feeds and the reconciler see no churn."""
    return previous == tuple(sorted(new)) and current.errors == errors


def _assignments(plan: FeedPlan) -> list[Assignment]:
    rows = plan.assignments.values_list("instrument_token", "account_id", "connection", "primary")
    return sorted(
        Assignment(token, account, connection, primary) for token, account, connection, primary in rows
    )


@transaction.atomic
def _plan_store(
    assignments: tuple[Assignment, ...], modes: dict[int, str], errors: list[str], desired: int
) -> FeedPlan:
    latest = FeedPlan.objects.select_for_update().order_by("-version").first()
    plan = FeedPlan.objects.create(
        version=(latest.version + 1) if latest else 1, errors=errors, desired_tokens=desired
    )
    FeedAssignment.objects.bulk_create(
        [
            FeedAssignment(
                plan=plan,
                account_id=a.account_id,
                connection=a.connection,
                instrument_token=a.token,
                primary=a.primary,
                mode=modes.get(a.token, "quote"),
            )
            for a in assignments
        ],
        batch_size=2000,
    )
    FeedPlan.objects.filter(version__lte=plan.version - PLANS_KEPT).delete()
    return plan


def feed_supervise(*, client: redis.Redis) -> list[int]:
    """Enqueue a feed for every enabled, healthy account that has no live lease."""
    started = []
    for account in _healthy_accounts():
        if client.exists(lease_key(account.pk)):
            continue
        # A queued feed needs a moment to take its lease; don't enqueue it again meanwhile.
        if not client.set(feed_starting_key(account.pk), 1, nx=True, px=settings.FEED_LEASE_TTL_MS):
            continue
        current_app.send_task("workers.feed", args=[account.pk])
        started.append(account.pk)
    return started


@dataclass(frozen=True, slots=True)
class Drift:
    account_id: int
    planned: int
    reported: int
    stale_version: bool


def feed_reconcile(*, client: redis.Redis) -> list[Drift]:
    """Compare the plan in force with what the feeds report (they had a period to converge) and
    push it again to feeds still on an older version; then re-plan, a no-op unless ATM, the watch
    specs or account health moved."""
    plan = feed_plan_current()
    drifts = [] if plan is None else [_drift(client, plan, account.pk) for account in _healthy_accounts()]
    for drift in drifts:
        if drift.stale_version:
            client.publish(CONTROL_CHANNEL, json.dumps({"action": "plan", "version": plan.version}))
        FEED_DRIFT.labels(str(drift.account_id)).set(drift.planned - drift.reported)
        if drift.planned != drift.reported:
            logger.warning("feed drift: %s", drift)
    feed_plan_refresh(client=client)
    return drifts


def _drift(client: redis.Redis, plan: FeedPlan, account_id: int) -> Drift:
    planned = plan.assignments.filter(account_id=account_id).count()
    raw = client.get(feed_status_key(account_id))
    if raw is None:
        return Drift(account_id, planned, 0, stale_version=False)
    status = json.loads(raw)
    reported = sum(len(tokens) for tokens in status["connections"].values())
    return Drift(account_id, planned, reported, stale_version=status["plan_version"] < plan.version)
