"""The control plane's writes: plan the fleet, start missing feeds, reconcile drift."""

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import itemgetter

import redis
from celery import current_app
from django.conf import settings
from django.db import transaction
from kiteconnect.exceptions import KiteException
from requests.exceptions import RequestException

from ticks.clocks import market_now
from ticks.exchange_calendar import market_calendar
from ticks.feeds.lease import lease_key
from ticks.feeds.metrics import FEED_DRIFT
from ticks.feeds.planner import AccountCapacity, Assignment, Plan, PlanResult, plan_assign
from ticks.feeds.rebalance import REBALANCE_PENDING_KEY, bands_store
from ticks.kite import kite_client_for
from ticks.models import BrokerAccount, Instrument
from workers.control import (
    CONTROL_CHANNEL,
    DRIFT_LAST_KEY,
    PLAN_VERSION_KEY,
    feed_starting_key,
    feed_status_key,
)
from workers.desired import Desired, TokenReason, feed_desired
from workers.models import FeedAssignment, FeedPlan
from workers.schedule import day_steps_due
from workers.selectors import feed_plan_current

logger = logging.getLogger(__name__)

PLAN_LOCK_KEY = "feeds:plan:lock"
PLAN_LOCK_S, PLAN_LOCK_WAIT_S = 30, 15  # a re-plan's task is stopped at 20 s
PLANS_KEPT = 200  # versions kept for operators; each holds only its change


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


def feed_plan_refresh(
    *,
    client: redis.Redis,
    reason: str = "refresh",
    crossed_at: float | None = None,
    market_at: float | None = None,
) -> FeedPlan:
    """Plan every desired token onto the healthy accounts, store it, and tell the feeds.

    ``crossed_at`` (host epoch s) is when a feed received the tick that crossed an ATM band; it rides
    on the plan message so the feeds can time crossing -> first tick of a new strike. ``market_at`` is
    that tick's exchange time: the market is at least there, whatever the market clock extrapolates.
    """
    # One re-plan at a time across every worker: tick asks, the backstop and the day's steps overlap,
    # and each stores its change against the rows in force.
    with client.lock(PLAN_LOCK_KEY, timeout=PLAN_LOCK_S, blocking_timeout=PLAN_LOCK_WAIT_S):
        return _plan_refresh(client, reason, crossed_at, market_at)


def _plan_refresh(
    client: redis.Redis, reason: str, crossed_at: float | None, market_at: float | None
) -> FeedPlan:
    now = market_now()
    if market_at is not None:
        now = max(now, datetime.fromtimestamp(market_at, tz=UTC))
    desired = feed_desired(
        redis_client=client, fallback_prices=_kite_ltp, now=now, calendar=market_calendar()
    )
    accounts = [
        AccountCapacity(a.pk, True, a.max_connections, a.tokens_per_connection) for a in _healthy_accounts()
    ]
    current = feed_plan_current()
    in_force = list(_rows_in_force())  # the plan in force: the lock keeps other writers out
    previous = _as_assignments(in_force)
    result = plan_assign(desired.groups, accounts, previous)
    errors = [*desired.problems, *(error.message for error in result.errors)]
    bands_changed = bands_store(client, desired.bands)
    if current is not None and _same(current, previous, result.plan, errors):
        if bands_changed:
            client.publish(CONTROL_CHANNEL, json.dumps({"action": "bands"}))
        return current
    change = _change(previous or (), result)
    plan = _plan_store(result.plan, desired, errors, change, _reason(reason, desired, change), in_force)
    client.set(PLAN_VERSION_KEY, plan.version)
    message = {"action": "plan", "version": plan.version, "crossed_at": crossed_at}
    client.publish(CONTROL_CHANNEL, json.dumps(message))
    logger.info(
        "plan v%d (%s): %d assignments, errors: %s", plan.version, plan.reason, len(result.plan), errors
    )
    return plan


def feed_rebalance(
    *, client: redis.Redis, reason: str, crossed_at: float | None = None, market_at: float | None = None
) -> FeedPlan:
    """Re-plan now (a feed saw its underlying cross an ATM band, or the beat's backstop), then let the
    next crossing ask again."""
    try:
        return feed_plan_refresh(client=client, reason=reason, crossed_at=crossed_at, market_at=market_at)
    finally:
        client.delete(REBALANCE_PENDING_KEY)


@dataclass(frozen=True, slots=True)
class _Change:
    added: int
    removed: int
    moved: int


def _change(previous: tuple[Assignment, ...], result: PlanResult) -> _Change:
    before = {a.token for a in previous}
    after = {a.token for a in result.plan}
    return _Change(len(after - before), len(before - after), len(result.moved))


def _reason(trigger: str, desired: Desired, change: _Change) -> str:
    what = f"+{change.added} -{change.removed} tokens, {change.moved} moved"
    return f"{trigger}: {desired.closed or what}"[:300]


def _same(current: FeedPlan, previous: Plan, new: Plan, errors: list[str]) -> bool:
    """Nothing changed: keep the version, so feeds and the reconciler see no churn. Both plans are in
    the planner's order, (account, connection, token)."""
    return previous == new and current.errors == errors


# What makes two assignment rows of one (token, account, connection) the same row. A token's
# underlying, expiry and strike never change (the group names the expiry), so they are not compared.
_ROW_FIELDS = ("primary", "mode", "group", "strike_offset", "role")
_CHUNK = 2000


def _rows_in_force() -> Iterable[tuple]:
    """(pk, token, account_id, connection, *_ROW_FIELDS) of every row in force."""
    return FeedAssignment.objects.in_force().values_list(
        "pk", "instrument_token", "account_id", "connection", *_ROW_FIELDS
    )


def _as_assignments(rows: list[tuple]) -> Plan:
    """The planner's view of rows from ``_rows_in_force`` (pk, token, account, connection, primary, ...),
    in its order (account, connection, token)."""
    plan = map(Assignment._make, (row[1:5] for row in rows))  # _make builds the tuple in C
    return tuple(sorted(plan, key=itemgetter(1, 2, 0)))


@transaction.atomic
def _plan_store(
    assignments: tuple[Assignment, ...],
    desired: Desired,
    errors: list[str],
    change: _Change,
    reason: str,
    in_force: list[tuple],
) -> FeedPlan:
    """A new version that retires the rows that changed and places their replacements (a re-centre
    writes a few dozen rows, not the fleet's 30,000)."""
    latest = FeedPlan.objects.select_for_update().order_by("-version").first()
    plan = FeedPlan.objects.create(
        version=(latest.version + 1) if latest else 1,
        errors=errors,
        desired_tokens=len(desired.modes),
        reason=reason,
        added_tokens=change.added,
        removed_tokens=change.removed,
        moved_tokens=change.moved,
    )
    wanted = {
        (a.token, a.account_id, a.connection): _row_values(
            a, desired.modes.get(a.token, "quote"), desired.reasons
        )
        for a in assignments
    }
    kept = set()
    retired = []
    for pk, token, account_id, connection, *values in in_force:
        key = (token, account_id, connection)
        if wanted.get(key) == tuple(values):
            kept.add(key)
        else:
            retired.append(pk)
    for first in range(0, len(retired), _CHUNK):
        FeedAssignment.objects.filter(pk__in=retired[first : first + _CHUNK]).update(retired_in=plan)
    placed = [
        _assignment(plan, a, desired.modes.get(a.token, "quote"), desired.reasons.get(a.token))
        for a in assignments
        if (a.token, a.account_id, a.connection) not in kept
    ]
    FeedAssignment.objects.bulk_create(placed, batch_size=_CHUNK)
    _plans_prune(first_kept=plan.version - PLANS_KEPT + 1)
    return plan


def _plans_prune(*, first_kept: int) -> None:
    """Forget the versions before ``first_kept``: rows in force at none of the kept versions, then
    the versions that placed no row still kept."""
    FeedAssignment.objects.filter(retired_in__version__lte=first_kept).delete()
    FeedPlan.objects.filter(version__lt=first_kept, placed__isnull=True).delete()


def _row_values(a: Assignment, mode: str, reasons: dict[int, TokenReason]) -> tuple:
    """The ``_ROW_FIELDS`` of one assignment, as the database gives them back (plain tuples: a fleet
    plan compares 30,000 of them, and model instances cost a second)."""
    why = reasons.get(a.token)
    if why is None:
        return (a.primary, mode, "", None, FeedAssignment.Role.OPTION)
    return (a.primary, mode, why.group, why.strike_offset, why.role)


def _assignment(plan: FeedPlan, a: Assignment, mode: str, why: TokenReason | None) -> FeedAssignment:
    row = FeedAssignment(
        plan=plan,
        account_id=a.account_id,
        connection=a.connection,
        instrument_token=a.token,
        primary=a.primary,
        mode=mode,
    )
    if why is not None:
        row.group, row.underlying, row.expiry, row.role = why.group, why.underlying, why.expiry, why.role
        row.strike = None if why.strike is None else Decimal(str(why.strike))
        row.strike_offset = why.strike_offset
    return row


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


def feed_reconcile(*, client: redis.Redis, now: float) -> list[Drift]:
    """Compare the plan in force with what the feeds report (they had a period to converge), push it
    again to feeds still on an older version, and record the drift found for operators."""
    plan = feed_plan_current()
    if plan is None:
        return []
    healthy = _healthy_accounts()
    drifts = [_drift(client, plan, account.pk) for account in healthy]
    _drift_gauge_clear(exclude={account.pk for account in healthy})
    for drift in drifts:
        if drift.stale_version:
            client.publish(CONTROL_CHANNEL, json.dumps({"action": "plan", "version": plan.version}))
        FEED_DRIFT.labels(str(drift.account_id)).set(drift.planned - drift.reported)
        if drift.planned != drift.reported:
            logger.warning("feed drift: %s", drift)
    fixed = [asdict(drift) for drift in drifts if drift.stale_version or drift.planned != drift.reported]
    if fixed:
        client.set(DRIFT_LAST_KEY, json.dumps({"at": now, "plan_version": plan.version, "drifts": fixed}))
    return drifts


def _drift_gauge_clear(*, exclude: set[int]) -> None:
    """An account disabled or unhealthy has nothing to reconcile: its gauge reads 0, not the drift it
    had when it left (a multiprocess gauge cannot drop a series, so it is set)."""
    for account_id in BrokerAccount.objects.exclude(pk__in=exclude).values_list("pk", flat=True):
        FEED_DRIFT.labels(str(account_id)).set(0)


def _drift(client: redis.Redis, plan: FeedPlan, account_id: int) -> Drift:
    planned = plan.assignments.filter(account_id=account_id).count()
    raw = client.get(feed_status_key(account_id))
    if raw is None:
        return Drift(account_id, planned, 0, stale_version=False)
    status = json.loads(raw)
    reported = sum(len(tokens) for tokens in status["connections"].values())
    return Drift(account_id, planned, reported, stale_version=status["plan_version"] < plan.version)


DAY_DONE_TTL_S = 3 * 24 * 3600


def trading_day_advance(*, client: redis.Redis, now: datetime) -> list[str]:
    """Start each of the day's steps that is due on the market clock and not yet started today."""
    day, due = day_steps_due(now, market_calendar())
    started = []
    for step in due:
        if client.set(f"day:done:{day}:{step.name}", now.isoformat(), nx=True, ex=DAY_DONE_TTL_S):
            current_app.send_task(step.task, kwargs={"reason": step.name} if step.replans else {})
            started.append(step.name)
    if started:
        logger.info("trading day %s: started %s", day, started)
    return started
