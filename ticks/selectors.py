"""Reads for the option chain. Each returns plain values or one pre-filtered queryset."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ticks.clocks import market_now
from ticks.feeds.capacity import CapacityReport, UnderlyingNeed, capacity_report
from ticks.feeds.latest import latest_ticks_read
from ticks.feeds.planner import AccountCapacity
from ticks.models import (
    DASHBOARD_COLUMNS,
    DASHBOARD_DEFAULT_COLUMNS,
    DASHBOARD_STRIKE_RANGE_DEFAULT,
    BrokerAccount,
    DashboardPreferences,
    Instrument,
    WatchSpec,
)

OPTION_TYPES = (Instrument.Type.CE, Instrument.Type.PE)
# Kite names of the NSE and BSE index derivatives (Aug 2026); every other name with options is a stock.
INDEX_UNDERLYINGS = frozenset(
    {"NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50", "SENSEX", "BANKEX", "SENSEX50"}
)


@dataclass(frozen=True, slots=True)
class OptionPair:
    strike: Decimal
    call: Instrument | None
    put: Instrument | None


def _active_options(*, underlying: str) -> QuerySet[Instrument]:
    return Instrument.objects.filter(name=underlying, instrument_type__in=OPTION_TYPES, is_active=True)


def underlying_exists(*, underlying: str) -> bool:
    return _active_options(underlying=underlying).exists()


def chain_expiries(*, underlying: str, on_or_after: date | None = None) -> list[date]:
    """Option expiries of an underlying, nearest first (one query)."""
    options = _active_options(underlying=underlying)
    if on_or_after is not None:
        options = options.filter(expiry__gte=on_or_after)
    return list(options.order_by("expiry").values_list("expiry", flat=True).distinct())


def chain_strikes(*, underlying: str, expiry: date) -> list[Decimal]:
    """Distinct strikes of one expiry, ascending (one query)."""
    options = _active_options(underlying=underlying).filter(expiry=expiry)
    return list(options.order_by("strike").values_list("strike", flat=True).distinct())


def chain_pair(*, underlying: str, expiry: date, strike: Decimal) -> OptionPair:
    """The CE and PE at one strike (one query); a missing leg is None."""
    legs = {
        leg.instrument_type: leg
        for leg in _active_options(underlying=underlying).filter(expiry=expiry, strike=strike)
    }
    return OptionPair(strike=strike, call=legs.get(Instrument.Type.CE), put=legs.get(Instrument.Type.PE))


def chain_future(*, underlying: str, expiry: date) -> Instrument | None:
    """The same-expiry future, which prices the forward for Black-76 (one query)."""
    return Instrument.objects.filter(
        name=underlying, instrument_type=Instrument.Type.FUT, expiry=expiry, is_active=True
    ).first()


def instrument_list(
    *,
    exchange: str | None = None,
    name: str | None = None,
    expiry: date | None = None,
    instrument_type: str | None = None,
    strike_min: Decimal | None = None,
    strike_max: Decimal | None = None,
) -> QuerySet[Instrument]:
    """Active instruments filtered by whatever is given, in a stable order for pagination."""
    filters = {
        "exchange": exchange,
        "name": name,
        "expiry": expiry,
        "instrument_type": instrument_type,
        "strike__gte": strike_min,
        "strike__lte": strike_max,
    }
    given = {lookup: value for lookup, value in filters.items() if value is not None}
    return Instrument.objects.filter(is_active=True, **given).order_by("exchange", "tradingsymbol")


def broker_account_get(*, name: str) -> BrokerAccount | None:
    return BrokerAccount.objects.filter(name=name).first()


def latest_ticks(*, tokens: list[int]) -> npt.NDArray[np.void]:
    """The newest decoded tick of each token that has ticked (ticks.feeds.protocol.TICK_DTYPE rows)."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        return latest_ticks_read(client, tokens)
    finally:
        client.close()


def underlying_index(*, underlying: str) -> Instrument | None:
    """The underlying's index instrument (settings.UNDERLYING_INDEX), if listed and active."""
    key = settings.UNDERLYING_INDEX.get(underlying)
    if key is None:
        return None
    exchange, _, symbol = key.partition(":")
    return Instrument.objects.filter(exchange=exchange, tradingsymbol=symbol, is_active=True).first()


def fno_underlyings(*, stocks: bool, indices: bool) -> list[str]:
    """Names with active options, alphabetical: indices (INDEX_UNDERLYINGS or settings.UNDERLYING_INDEX)
    and/or stocks (one query)."""
    names = Instrument.objects.filter(instrument_type__in=OPTION_TYPES, is_active=True)
    index_names = INDEX_UNDERLYINGS | settings.UNDERLYING_INDEX.keys()
    return [
        name
        for name in names.order_by("name").values_list("name", flat=True).distinct()
        if (indices if name in index_names else stocks)
    ]


def watch_specs_by_priority(specs: QuerySet[WatchSpec]) -> list[WatchSpec]:
    """The planner's order when capacity runs short: index derivatives first, then stocks, by name."""
    index_names = INDEX_UNDERLYINGS | settings.UNDERLYING_INDEX.keys()
    return sorted(specs, key=lambda spec: (spec.underlying not in index_names, spec.underlying))


def expiries_of_kind(expiries: list[date], kind: str) -> list[date]:
    """Monthly = the last listed expiry of its calendar month; weekly = every other one."""
    last_of_month = {(e.year, e.month): e for e in expiries}
    monthly = set(last_of_month.values())
    if kind == WatchSpec.ExpiryKind.MONTHLY:
        return [e for e in expiries if e in monthly]
    if kind == WatchSpec.ExpiryKind.WEEKLY:
        return [e for e in expiries if e not in monthly]
    return expiries


@dataclass(frozen=True, slots=True)
class _ExpiryCount:
    expiry: date
    strikes: int
    options: int


def watch_spec_needs(specs: Sequence[WatchSpec], *, today: date) -> list[UnderlyingNeed]:
    """The tokens each spec streams, in the order given (the planner's priority), in three queries.

    Per expiry group (the spec's nearest ``expiry_count`` expiries of its kind): ``2N + 1`` strikes x
    CE/PE, or the whole chain when it lists fewer strikes (no price is needed: the window is assumed
    at least N strikes from either end), plus its companions: the index where settings.UNDERLYING_INDEX
    lists one, the nearest future and the same-expiry future.
    """
    names = [spec.underlying for spec in specs]
    chains = _chain_counts(names, today)
    futures = _futures_by_name(names, today)
    indexes = _index_tokens(names)
    return [_spec_need(spec, chains.get(spec.underlying, []), futures, indexes) for spec in specs]


def feed_capacity_report(*, with_enabled: Collection[int] = ()) -> CapacityReport:
    """The enabled specs' needs (plus the specs ``with_enabled`` as if enabled) against the enabled,
    healthy accounts; the specs in the planner's order."""
    specs = watch_specs_by_priority(WatchSpec.objects.filter(Q(enabled=True) | Q(pk__in=with_enabled)))
    today = timezone.localdate(market_now())
    accounts = BrokerAccount.objects.filter(enabled=True, health=BrokerAccount.Health.OK).order_by("pk")
    capacities = [AccountCapacity(a.pk, True, a.max_connections, a.tokens_per_connection) for a in accounts]
    return capacity_report(watch_spec_needs(specs, today=today), capacities)


def _spec_need(
    spec: WatchSpec,
    chain: list[_ExpiryCount],
    futures: Mapping[str, list[tuple[date, int]]],
    indexes: Mapping[str, int],
) -> UnderlyingNeed:
    kinds = set(expiries_of_kind([count.expiry for count in chain], spec.expiry_kind))
    groups = [count for count in chain if count.expiry in kinds][: spec.expiry_count]
    own_futures = futures.get(spec.underlying, [])
    near = {token for _, token in own_futures[:1]}
    index = {indexes[spec.underlying]} if spec.underlying in indexes else set()
    window = 2 * (spec.strikes_around_atm + settings.FEED_STRIKE_MARGIN) + 1  # as workers.desired streams
    tokens, largest = 0, 0
    for group in groups:
        same_expiry = {token for expiry, token in own_futures if expiry == group.expiry}
        companions = len(index | near | same_expiry)
        options = group.options if group.strikes <= window else min(group.options, 2 * window)
        tokens += options + companions
        largest = max(largest, companions)
    return UnderlyingNeed(spec.underlying, tokens, largest)


def _chain_counts(names: list[str], today: date) -> dict[str, list[_ExpiryCount]]:
    rows = (
        Instrument.objects.filter(
            name__in=names, instrument_type__in=OPTION_TYPES, is_active=True, expiry__gte=today
        )
        .values("name", "expiry")
        .annotate(strikes=Count("strike", distinct=True), options=Count("pk"))
        .order_by("name", "expiry")
    )
    chains: dict[str, list[_ExpiryCount]] = {}
    for row in rows:
        chains.setdefault(row["name"], []).append(_ExpiryCount(row["expiry"], row["strikes"], row["options"]))
    return chains


def _futures_by_name(names: list[str], today: date) -> dict[str, list[tuple[date, int]]]:
    rows = Instrument.objects.filter(
        name__in=names, instrument_type=Instrument.Type.FUT, is_active=True, expiry__gte=today
    ).order_by("name", "expiry")
    futures: dict[str, list[tuple[date, int]]] = {}
    for name, expiry, token in rows.values_list("name", "expiry", "instrument_token"):
        futures.setdefault(name, []).append((expiry, token))
    return futures


def _index_tokens(names: list[str]) -> dict[str, int]:
    """name -> its index instrument's token, for the names settings.UNDERLYING_INDEX lists (one query)."""
    wanted: dict[tuple[str, str], str] = {}
    for name in names:
        if name in settings.UNDERLYING_INDEX:
            exchange, _, symbol = settings.UNDERLYING_INDEX[name].partition(":")
            wanted[(exchange, symbol)] = name
    if not wanted:
        return {}
    match = Q()
    for exchange, symbol in wanted:
        match |= Q(exchange=exchange, tradingsymbol=symbol)
    rows = Instrument.objects.filter(match, is_active=True)
    return {
        wanted[(exchange, symbol)]: token
        for exchange, symbol, token in rows.values_list("exchange", "tradingsymbol", "instrument_token")
    }


def dashboard_preferences(*, user: AbstractBaseUser) -> dict[str, Any]:
    """The user's dashboard layout, ``{"columns": [...], "strike_range": N}``; the defaults without a row.

    Stored columns are read through DASHBOARD_COLUMNS, so a column a later release drops never
    reaches the page (and a row left with none falls back to the defaults).
    """
    stored = DashboardPreferences.objects.filter(user=user).values("columns", "strike_range").first()
    if stored is None:
        return {"columns": list(DASHBOARD_DEFAULT_COLUMNS), "strike_range": DASHBOARD_STRIKE_RANGE_DEFAULT}
    columns = [name for name in DASHBOARD_COLUMNS if name in stored["columns"]]
    return {"columns": columns or list(DASHBOARD_DEFAULT_COLUMNS), "strike_range": stored["strike_range"]}
