"""Reads of the feed plan in force."""

import heapq
import json
from collections import defaultdict
from collections.abc import Set
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.db.models import Count, OuterRef, QuerySet, Subquery

from ticks.feeds.lease import lease_key
from ticks.models import BrokerAccount, Instrument
from workers.control import DRIFT_LAST_KEY, feed_status_key
from workers.models import FeedAssignment, FeedPlan

TOKEN_SAMPLE = 50  # tokens listed per difference on a connection; the counts are exact


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
    rows = (
        FeedAssignment.objects.in_plan(plan)
        .filter(account_id=account_id)
        .values_list("connection", "instrument_token", "mode", "primary")
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


@dataclass(frozen=True, slots=True)
class TokenDiff:
    """A connection's planned tokens against the ones its feed reports subscribed."""

    planned: int
    subscribed: int
    missing_count: int  # planned, not subscribed
    missing: tuple[int, ...]  # the lowest ``sample`` of them
    unplanned_count: int  # subscribed, not planned
    unplanned: tuple[int, ...]


def token_diff(planned: Set[int], subscribed: Set[int], *, sample: int) -> TokenDiff:
    missing = planned - subscribed
    unplanned = subscribed - planned
    return TokenDiff(
        planned=len(planned),
        subscribed=len(subscribed),
        missing_count=len(missing),
        missing=tuple(heapq.nsmallest(sample, missing)),
        unplanned_count=len(unplanned),
        unplanned=tuple(heapq.nsmallest(sample, unplanned)),
    )


@dataclass(frozen=True, slots=True)
class ConnectionCoverage:
    account_id: int
    account: str
    connection: int
    reported_plan_version: int | None  # the version the account's feed applied; None: no live report
    tokens: TokenDiff


@dataclass(frozen=True, slots=True)
class AccountDrift:
    account_id: int
    planned: int
    reported: int
    stale_version: bool


@dataclass(frozen=True, slots=True)
class DriftFix:
    """The reconciler's last pass over the plan in force."""

    at: datetime
    plan_version: int
    drifts: tuple[AccountDrift, ...]


@dataclass(frozen=True, slots=True)
class PlanOverview:
    plan: FeedPlan | None
    connections: tuple[ConnectionCoverage, ...]
    last_drift: DriftFix | None


def feed_plan_overview(*, client: redis.Redis, sample: int = TOKEN_SAMPLE) -> PlanOverview:
    """The plan in force, subscribed against planned per (account, connection), and the last drift fixed."""
    plan = feed_plan_current()
    return PlanOverview(
        plan, feed_plan_coverage(client=client, plan=plan, sample=sample), feed_drift_last(client=client)
    )


def feed_plan_coverage(
    *, client: redis.Redis, plan: FeedPlan | None, sample: int = TOKEN_SAMPLE
) -> tuple[ConnectionCoverage, ...]:
    """Every connection a plan or a feed's report names, by account name then connection."""
    accounts = list(BrokerAccount.objects.order_by("name").values_list("pk", "name"))
    reports = client.mget([feed_status_key(pk) for pk, _ in accounts]) if accounts else []
    planned = _planned_tokens(plan)
    rows: list[ConnectionCoverage] = []
    for (pk, name), raw in zip(accounts, reports, strict=True):
        rows.extend(_account_coverage(pk, name, planned.get(pk, {}), json.loads(raw) if raw else {}, sample))
    return tuple(rows)


def _account_coverage(
    account_id: int, name: str, planned: dict[int, set[int]], report: dict, sample: int
) -> list[ConnectionCoverage]:
    # JSON object keys: the feed's connection indexes arrive as strings.
    subscribed = {int(index): set(tokens) for index, tokens in report.get("connections", {}).items()}
    version = report.get("plan_version")
    return [
        ConnectionCoverage(
            account_id,
            name,
            connection,
            version,
            token_diff(planned.get(connection, set()), subscribed.get(connection, set()), sample=sample),
        )
        for connection in sorted(planned.keys() | subscribed.keys())
    ]


def _planned_tokens(plan: FeedPlan | None) -> dict[int, dict[int, set[int]]]:
    """account -> connection -> tokens."""
    planned: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    if plan is not None:
        for account_id, connection, token in plan.assignments.values_list(
            "account_id", "connection", "instrument_token"
        ):
            planned[account_id][connection].add(token)
    return planned


def feed_drift_last(*, client: redis.Redis) -> DriftFix | None:
    raw = client.get(DRIFT_LAST_KEY)
    if raw is None:
        return None
    fix = json.loads(raw)
    drifts = tuple(
        AccountDrift(d["account_id"], d["planned"], d["reported"], d["stale_version"]) for d in fix["drifts"]
    )
    return DriftFix(datetime.fromtimestamp(fix["at"], tz=UTC), fix["plan_version"], drifts)


def feed_assignment_list(
    *,
    plan: FeedPlan | None = None,
    account: BrokerAccount | None = None,
    underlying: str | None = None,
    token: int | None = None,
) -> QuerySet[FeedAssignment]:
    """Assignments with their account, plan and the instrument's tradingsymbol, in a fixed order."""
    rows = FeedAssignment.objects.select_related("account", "plan").annotate(tradingsymbol=_tradingsymbol())
    if plan is not None:
        rows = rows.in_plan(plan)
    if account is not None:
        rows = rows.filter(account=account)
    if underlying is not None:
        rows = rows.filter(underlying=underlying)
    if token is not None:
        rows = rows.filter(instrument_token=token)
    return rows.order_by("-plan__version", "account__name", "connection", "instrument_token")


def _tradingsymbol() -> Subquery:
    """Kite reuses a token after its instrument expires: the active instrument, else the newest loaded."""
    instruments = Instrument.objects.filter(instrument_token=OuterRef("instrument_token"))
    return Subquery(instruments.order_by("-is_active", "-loaded_at").values("tradingsymbol")[:1])
