"""Reads for Kite-candle work: which tokens are watched, and what time the market says it is.

The market clock for bars is the newest exchange timestamp the feeds have written to the latest-tick
cache for the watched index and futures rows (full mode carries it). That is the exchange's "now" as
the service last saw it: it stops when the feeds stop, so a minute is never called closed because the
host's clock moved on while no tick proved it. Only where nothing has ticked yet (start-up before the
feeds connect) does a caller fall back to ``ticks.clocks.market_now`` (MARKET_CLOCK:
kitesim's clock in dev, IST wall time in production, where Kite's sessions follow it).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import redis

from ticks.clocks import market_now
from ticks.exchange_calendar import TradingCalendar
from ticks.feeds.latest import latest_ticks_read
from ticks.market_time import IST, MARKET_CLOSE, MARKET_OPEN
from ticks.models import Instrument, WatchSpec
from ticks.selectors import OPTION_TYPES, underlying_index
from workers.selectors import feed_plan_current


@dataclass(frozen=True, slots=True)
class WatchedUnderlying:
    underlying: str
    index: Instrument | None
    futures: tuple[Instrument, ...]
    options: tuple[Instrument, ...]  # the plan's option rows for this underlying

    @property
    def core(self) -> list[Instrument]:
        return [*([self.index] if self.index else []), *self.futures]


# --- pure session arithmetic ---------------------------------------------------------------------


def session_open(day: date) -> datetime:
    return datetime.combine(day, MARKET_OPEN, tzinfo=IST)


def session_close(day: date) -> datetime:
    return datetime.combine(day, MARKET_CLOSE, tzinfo=IST)


def current_session(now: datetime, calendar: TradingCalendar) -> date:
    """The session whose minutes ``now`` can have closed: today's once it opened, else the previous session's.

    Before the open, at weekends and on exchange holidays that is the last session before today, so
    nothing asks Kite for the candles of a day that did not trade.
    """
    today = now.astimezone(IST).date()
    if calendar.is_session(today) and now >= session_open(today):
        return today
    return calendar.previous_session(today)


def closed_minutes(day: date, now: datetime) -> list[datetime]:
    """Starts of the day's 1-minute bars that ended at or before ``now``."""
    first, close = session_open(day), session_close(day)
    last_end = min(now, close)
    count = max(0, int((last_end - first).total_seconds() // 60))
    return [first + timedelta(minutes=k) for k in range(count)]


# --- reads ---------------------------------------------------------------------------------------


def _planned_options(underlying: str) -> list[Instrument]:
    plan = feed_plan_current()
    if plan is None:
        return []
    tokens = plan.assignments.filter(primary=True).values_list("instrument_token", flat=True)
    return list(
        Instrument.objects.filter(
            instrument_token__in=list(tokens),
            name=underlying,
            instrument_type__in=OPTION_TYPES,
            is_active=True,
        ).order_by("expiry", "strike", "instrument_type")
    )


def _futures(underlying: str, day: date, option_expiries: set[date]) -> list[Instrument]:
    """The near future, and the futures of the watched option expiries (the chains' forwards)."""
    listed = list(
        Instrument.objects.filter(
            name=underlying, instrument_type=Instrument.Type.FUT, is_active=True, expiry__gte=day
        ).order_by("expiry")
    )
    return [f for k, f in enumerate(listed) if k == 0 or f.expiry in option_expiries]


def watched_underlyings(*, day: date, underlying: str | None = None) -> list[WatchedUnderlying]:
    """Enabled watch specs (or one underlying, watched or not): index, futures and planned options."""
    if underlying is not None:
        names = [underlying]
    else:
        names = list(
            WatchSpec.objects.filter(enabled=True).order_by("underlying").values_list("underlying", flat=True)
        )
    out = []
    for name in names:
        options = _planned_options(name)
        futures = _futures(name, day, {o.expiry for o in options if o.expiry})
        out.append(WatchedUnderlying(name, underlying_index(underlying=name), tuple(futures), tuple(options)))
    return out


def watched_clock_tokens() -> list[int]:
    """The watched indices and their listed futures: the full-mode rows whose exchange timestamps date the market."""
    names = list(WatchSpec.objects.filter(enabled=True).values_list("underlying", flat=True))
    indexes = [
        index.instrument_token
        for index in (underlying_index(underlying=name) for name in names)
        if index is not None
    ]
    futures = Instrument.objects.filter(name__in=names, instrument_type=Instrument.Type.FUT, is_active=True)
    return indexes + list(futures.values_list("instrument_token", flat=True))


def options_nearest_the_money(options: Sequence[Instrument], price: float | None) -> list[Instrument]:
    """Nearest expiry first, then by distance of the strike from ``price`` (CE before PE at a strike)."""
    if price is None:
        return list(options)
    return sorted(options, key=lambda o: (o.expiry, abs(float(o.strike) - price), o.instrument_type))


def latest_prices(client: redis.Redis, tokens: Sequence[int]) -> dict[int, float]:
    rows = latest_ticks_read(client, list(tokens))
    return {int(r["instrument_token"]): float(r["last_price"]) for r in rows if r["last_price"] > 0}


def feed_clock(client: redis.Redis, tokens: Sequence[int]) -> datetime | None:
    """The newest exchange timestamp of ``tokens`` in the latest-tick cache; None when none has one."""
    rows = latest_ticks_read(client, list(tokens))
    stamps = [int(s) for s in rows["exchange_timestamp"] if s > 0] if rows.size else []
    return datetime.fromtimestamp(max(stamps), UTC) if stamps else None


def bars_clock(client: redis.Redis, tokens: Sequence[int]) -> datetime:
    """The feeds' clock, else the configured market clock (nothing has ticked yet)."""
    return feed_clock(client, tokens) or market_now()
