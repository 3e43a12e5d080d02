"""Reads of the feed plan in force."""

import json
from collections import defaultdict
from dataclasses import dataclass

import redis
from django.db.models import Count

from ticks.feeds.lease import lease_key
from ticks.models import BrokerAccount
from workers.control import feed_status_key
from workers.models import FeedAssignment, FeedPlan


def feed_plan_current() -> FeedPlan | None:
    return FeedPlan.objects.order_by("-version").first()


@dataclass(frozen=True, slots=True)
class AccountPlan:
    version: int  # 0 before any plan
    connections: dict[int, dict[int, str]]  # connection -> {token: mode}
    # The tokens this account streams for the fleet: bars are built from these only (the others are
    # the per-connection copies of an underlying's index and future, primary on another connection).
    primary: frozenset[int]


def feed_connection_plan(*, account_id: int) -> AccountPlan:
    """One account's part of the plan in force."""
    plan = feed_plan_current()
    if plan is None:
        return AccountPlan(0, {}, frozenset())
    rows = FeedAssignment.objects.filter(plan=plan, account_id=account_id).values_list(
        "connection", "instrument_token", "mode", "primary"
    )
    connections: dict[int, dict[int, str]] = defaultdict(dict)
    primary: set[int] = set()
    for connection, token, mode, is_primary in rows:
        connections[connection][token] = mode
        if is_primary:
            primary.add(token)
    return AccountPlan(plan.version, dict(connections), frozenset(primary))


@dataclass(frozen=True, slots=True)
class FeedStatus:
    account: str
    enabled: bool
    health: str
    health_reason: str
    lease_holder: str | None
    plan_version: int | None
    connections: dict[str, int]
    subscribed: int
    planned: int
    last_frame_age_s: float | None
    state: str


def feed_status_list(*, client: redis.Redis, now: float) -> list[FeedStatus]:
    """Every broker account's feed as the plan and the feeds' own reports describe it."""
    plan = feed_plan_current()
    planned = _planned_counts(plan)
    accounts = list(BrokerAccount.objects.order_by("name"))
    holders = client.mget([lease_key(a.pk) for a in accounts]) if accounts else []
    reports = client.mget([feed_status_key(a.pk) for a in accounts]) if accounts else []
    return [
        _status(account, holder, report, planned.get(account.pk, 0), now)
        for account, holder, report in zip(accounts, holders, reports, strict=True)
    ]


def _planned_counts(plan: FeedPlan | None) -> dict[int, int]:
    if plan is None:
        return {}
    rows = plan.assignments.values("account_id").annotate(n=Count("id")).values_list("account_id", "n")
    return dict(rows)


def _status(
    account: BrokerAccount, holder: bytes | None, raw: bytes | None, planned: int, now: float
) -> FeedStatus:
    report = json.loads(raw) if raw else {}
    connections = {str(index): len(tokens) for index, tokens in report.get("connections", {}).items()}
    last_frame = report.get("last_frame_at") or 0.0
    return FeedStatus(
        account=account.name,
        enabled=account.enabled,
        health=account.health,
        health_reason=account.health_reason,
        lease_holder=holder.decode() if holder else None,
        plan_version=report.get("plan_version"),
        connections=connections,
        subscribed=sum(connections.values()),
        planned=planned,
        last_frame_age_s=round(now - last_frame, 3) if last_frame else None,
        state=_state(account, holder is not None, report, planned),
    )


def _state(account: BrokerAccount, leased: bool, report: dict, planned: int) -> str:
    if not account.enabled:
        return "disabled"
    if account.health != BrokerAccount.Health.OK:
        return account.health
    if not leased:
        return "no_feed"
    if report.get("connections"):
        return "streaming"
    return "connecting" if planned else "idle"
