"""Reads for greeks: the tick path's instrument table, live chains, stored snapshots and their history."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.db.models import Q, QuerySet, Subquery
from django.utils import timezone

from greeks.engine import IST, year_fraction
from greeks.models import GreeksSnapshot
from greeks.records import ChainKey, ChainLatest, ForwardSource, chain_latest_read
from greeks.status import GreeksStatus
from greeks.tickpath import InstrumentRow, InstrumentTable, instrument_table_build
from tickerproject.exceptions import ApplicationError, NotFoundError
from ticks.models import Instrument, WatchSpec
from ticks.selectors import OPTION_TYPES, underlying_exists

DERIVATIVE_TYPES = (Instrument.Type.CE, Instrument.Type.PE, Instrument.Type.FUT)
GREEK_FIELDS = ("iv", "iv_mid", "delta", "gamma", "theta", "vega", "rho")
# One option's stored minute, as the history export serves it (greeks_option_history).
HISTORY_FIELDS = (
    "taken_at", "last_price", "bid", "ask", "oi", "volume", "forward", "forward_source", "t_years",
    *GREEK_FIELDS, "status",
)  # fmt: skip
# A quote that has ticked but has no greeks record yet (the hook has not seen it, or is not running).
PENDING = "pending"


def instrument_table_load(*, index_keys: Mapping[str, str] | None = None) -> InstrumentTable:
    """Every active option and future, and each underlying's index instrument (two queries).

    ``index_keys`` maps an underlying to its index as ``EXCHANGE:TRADINGSYMBOL`` (default
    settings.UNDERLYING_INDEX), the way workers.desired finds it.
    """
    derivatives = Instrument.objects.filter(is_active=True, instrument_type__in=DERIVATIVE_TYPES)
    rows = [
        InstrumentRow(token, name, expiry, float(strike), kind)
        for token, name, expiry, strike, kind in derivatives.values_list(
            "instrument_token", "name", "expiry", "strike", "instrument_type"
        )
    ]
    rows += _index_rows(settings.UNDERLYING_INDEX if index_keys is None else index_keys)
    return instrument_table_build(rows)


def _index_rows(index_keys: Mapping[str, str]) -> list[InstrumentRow]:
    underlying_of = {tuple(key.split(":", 1)): underlying for underlying, key in index_keys.items()}
    if not underlying_of:
        return []
    wanted = Q()
    for exchange, symbol in underlying_of:
        wanted |= Q(exchange=exchange, tradingsymbol=symbol)
    indexes = Instrument.objects.filter(wanted, is_active=True)
    return [
        InstrumentRow(token, underlying_of[(exchange, symbol)], None, 0.0, "IDX")
        for token, exchange, symbol in indexes.values_list("instrument_token", "exchange", "tradingsymbol")
    ]


@dataclass(frozen=True, slots=True)
class OptionQuote:
    instrument_token: int
    last_price: float | None
    bid: float | None
    ask: float | None
    oi: int | None
    volume: int | None
    iv: float | None
    iv_mid: float | None
    delta: float | None
    gamma: float | None
    theta: float | None
    vega: float | None
    rho: float | None
    status: str
    # Epoch seconds (exchange clock) of the last trade, from the latest tick; None when the tick has
    # none (ltp/quote mode) and in stored snapshots, which do not keep it.
    last_trade_time: int | None


@dataclass(frozen=True, slots=True)
class ChainStrike:
    strike: Decimal
    call: OptionQuote | None
    put: OptionQuote | None


@dataclass(frozen=True)
class Chain:
    underlying: str
    expiry: date
    source: str  # "live" (the latest ticks and greeks) or "snapshot" (a stored minute)
    as_of: datetime | None  # the market (exchange) time the greeks are at
    forward: float | None
    forward_source: str
    atm_strike: Decimal | None
    t_years: float | None
    strikes: list[ChainStrike]


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    taken_at: datetime
    forward: float | None
    call_iv: float | None
    put_iv: float | None
    iv: float | None  # the OTM leg's: the CE at or above the forward, else the PE


@dataclass(frozen=True)
class StrikeHistory:
    underlying: str
    expiry: date
    strike: Decimal
    day: date
    points: list[HistoryPoint]


def greeks_chain_live(*, underlying: str, expiry: date, redis_client: redis.Redis | None = None) -> Chain:
    """The chain from the latest ticks and greeks: one query and one Redis round trip.

    Raises NotFoundError for an underlying or expiry without active options.
    """
    legs = list(
        _chain_options(underlying, expiry).values_list("instrument_token", "strike", "instrument_type")
    )
    if not legs:
        raise _chain_not_found(underlying, expiry)
    tokens = [token for token, _, _ in legs]
    client = redis_client or redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
    )
    try:
        latest = chain_latest_read(client, tokens, ChainKey(underlying, expiry))
    finally:
        if redis_client is None:
            client.close()
    quotes = [_live_quote(latest, i, token) for i, token in enumerate(tokens)]
    forward, source, as_of = _live_forward(latest)
    t_years = None if as_of is None else year_fraction(as_of.timestamp(), expiry)
    strikes = _by_strike([(strike, kind) for _, strike, kind in legs], quotes)
    return _chain(underlying, expiry, "live", as_of, forward, source, t_years, strikes)


def greeks_chain_minute(*, underlying: str, expiry: date, at: datetime) -> Chain:
    """The stored snapshot at or before ``at`` (one query); NotFoundError when there is none."""
    minute = (
        GreeksSnapshot.objects.filter(underlying=underlying, expiry=expiry, taken_at__lte=at)
        .order_by("-taken_at")
        .values("taken_at")[:1]
    )
    rows = list(
        GreeksSnapshot.objects.filter(
            underlying=underlying, expiry=expiry, taken_at=Subquery(minute)
        ).order_by("strike", "option_type")
    )
    if not rows:
        raise _unknown_chain(underlying, expiry) or NotFoundError(
            f"No snapshot of {underlying} {expiry.isoformat()} at or before {at.isoformat()}.", field="at"
        )
    first = rows[0]
    strikes = _by_strike(
        [(row.strike, row.option_type) for row in rows], [_snapshot_quote(row) for row in rows]
    )
    return _chain(
        underlying,
        expiry,
        "snapshot",
        first.taken_at,
        first.forward,
        first.forward_source,
        first.t_years,
        strikes,
    )


def greeks_strike_history(
    *, underlying: str, expiry: date, strike: Decimal, day: date | None = None
) -> StrikeHistory:
    """IV at one strike for every stored minute of ``day`` (default: the latest day stored).

    One query with ``day``, two without; NotFoundError when the strike has no snapshot.
    """
    rows = GreeksSnapshot.objects.filter(underlying=underlying, expiry=expiry, strike=strike)
    if day is None:
        latest = rows.order_by("-taken_at").values_list("taken_at", flat=True).first()
        if latest is None:
            raise _unknown_chain(underlying, expiry) or _history_not_found(underlying, expiry, strike)
        day = timezone.localdate(latest, IST)
    start = datetime.combine(day, time.min, tzinfo=IST)
    minutes = rows.filter(taken_at__gte=start, taken_at__lt=start + timedelta(days=1)).order_by("taken_at")
    points = _history_points(minutes.values_list("taken_at", "forward", "option_type", "iv"), strike)
    if not points:
        raise _history_not_found(underlying, expiry, strike, day)
    return StrikeHistory(underlying, expiry, strike, day, points)


def _chain_options(underlying: str, expiry: date) -> QuerySet[Instrument]:
    return Instrument.objects.filter(
        name=underlying, expiry=expiry, instrument_type__in=OPTION_TYPES, is_active=True
    ).order_by("strike", "instrument_type")


def _unknown_chain(underlying: str, expiry: date) -> NotFoundError | None:
    """The error for a chain neither listed nor ever stored; None for a known chain."""
    stored = GreeksSnapshot.objects.filter(underlying=underlying, expiry=expiry)
    if stored.exists() or _chain_options(underlying, expiry).exists():
        return None
    return _chain_not_found(underlying, expiry)


def _chain_not_found(underlying: str, expiry: date) -> NotFoundError:
    if not underlying_exists(underlying=underlying):
        return NotFoundError(f"No active options for underlying {underlying!r}.", field="underlying")
    return NotFoundError(f"{underlying} has no active options expiring {expiry.isoformat()}.", field="expiry")


def _history_not_found(
    underlying: str, expiry: date, strike: Decimal, day: date | None = None
) -> NotFoundError:
    when = f" on {day.isoformat()}" if day else ""
    return NotFoundError(
        f"No snapshot of {underlying} {expiry.isoformat()} at strike {strike.normalize():f}{when}.",
        field="strike",
    )


def _optional(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _live_quote(latest: ChainLatest, i: int, token: int) -> OptionQuote:
    tick, record = latest.ticks[i], latest.greeks[i]
    ticked = bool(latest.ticked[i])
    last = float(tick["last_price"]) if ticked and tick["last_price"] > 0 else None
    if latest.computed[i]:
        status = GreeksStatus(int(record["status"])).label
    else:
        status = GreeksStatus.NO_PRICE.label if last is None else PENDING
    best_bid, best_ask = float(tick["bid_price"][0]), float(tick["ask_price"][0])
    return OptionQuote(
        instrument_token=token,
        last_price=last,
        bid=best_bid if best_bid > 0 else None,
        ask=best_ask if best_ask > 0 else None,
        oi=int(tick["oi"]) if ticked else None,
        volume=int(tick["volume_traded"]) if ticked else None,
        **{name: _optional(record[name]) for name in GREEK_FIELDS},
        status=status,
        last_trade_time=int(tick["last_trade_time"]) if ticked and tick["last_trade_time"] > 0 else None,
    )


def _snapshot_quote(row: GreeksSnapshot) -> OptionQuote:
    return OptionQuote(
        instrument_token=row.instrument_token,
        last_price=row.last_price,
        bid=row.bid,
        ask=row.ask,
        oi=row.oi,
        volume=row.volume,
        **{name: getattr(row, name) for name in GREEK_FIELDS},
        status=row.status,
        last_trade_time=None,
    )


def _live_forward(latest: ChainLatest) -> tuple[float | None, str, datetime | None]:
    """The forward the chain's greeks were last computed on, its source, and their market time."""
    if latest.forward is not None:
        record = latest.forward
        when = datetime.fromtimestamp(float(record["market_time"]), tz=UTC)
        return _optional(record["forward"]), ForwardSource(int(record["forward_source"])).label, when
    stamped = latest.ticks["exchange_timestamp"]
    when = datetime.fromtimestamp(int(stamped.max()), tz=UTC) if stamped.size and stamped.max() > 0 else None
    return None, ForwardSource.NONE.label, when


def _by_strike(legs: list[tuple[Decimal, str]], quotes: list[OptionQuote]) -> list[ChainStrike]:
    pairs: dict[Decimal, dict[str, OptionQuote]] = {}
    for (strike, kind), quote in zip(legs, quotes, strict=True):
        pairs.setdefault(strike, {})[kind] = quote
    return [ChainStrike(strike, pair.get("CE"), pair.get("PE")) for strike, pair in sorted(pairs.items())]


def _chain(
    underlying: str,
    expiry: date,
    source: str,
    as_of: datetime | None,
    forward: float | None,
    forward_source: str,
    t_years: float | None,
    strikes: list[ChainStrike],
) -> Chain:
    atm = None if forward is None else min((s.strike for s in strikes), key=lambda k: abs(float(k) - forward))
    return Chain(underlying, expiry, source, as_of, forward, forward_source, atm, t_years, strikes)


def _history_points(
    rows: Iterable[tuple[datetime, float | None, str, float | None]], strike: Decimal
) -> list[HistoryPoint]:
    legs: dict[datetime, dict[str, float | None]] = {}
    forwards: dict[datetime, float | None] = {}
    for taken_at, forward, kind, iv in rows:
        legs.setdefault(taken_at, {})[kind] = iv
        forwards[taken_at] = forward
    points = []
    for taken_at, ivs in legs.items():
        forward = forwards[taken_at]
        otm = "CE" if forward is None or float(strike) >= forward else "PE"
        points.append(HistoryPoint(taken_at, forward, ivs.get("CE"), ivs.get("PE"), ivs.get(otm)))
    return points


def greeks_watched_chains() -> list[ChainKey]:
    """Every active (underlying, expiry) option chain of an enabled WatchSpec (two queries)."""
    underlyings = WatchSpec.objects.filter(enabled=True).values_list("underlying", flat=True)
    pairs = (
        Instrument.objects.filter(
            name__in=list(underlyings), instrument_type__in=OPTION_TYPES, is_active=True
        )
        .order_by("name", "expiry")
        .values_list("name", "expiry")
        .distinct()
    )
    return [ChainKey(name, expiry) for name, expiry in pairs]


def greeks_option_history(
    *, option: Instrument, start: datetime, end: datetime
) -> QuerySet[GreeksSnapshot, tuple[Any, ...]]:
    """One option's stored minutes in [start, end], oldest first, as HISTORY_FIELDS tuples (lazy).

    Keyed as the snapshots are (underlying, expiry, strike, type), so a range is one scan of the
    greeks_snapshot_strike index. ApplicationError naming ``instrument`` for a non-option.
    """
    if option.instrument_type not in OPTION_TYPES:
        raise ApplicationError(
            f"{option} is not an option: IV and Greeks are stored for CE and PE only.", field="instrument"
        )
    return (
        GreeksSnapshot.objects.filter(
            underlying=option.name,
            expiry=option.expiry,
            strike=option.strike,
            option_type=option.instrument_type,
            taken_at__gte=start,
            taken_at__lte=end,
        )
        .order_by("taken_at")
        .values_list(*HISTORY_FIELDS)
    )
