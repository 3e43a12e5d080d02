"""Reads for bars: stored 1-minute bars, Kite's other intervals resampled from them, instruments by key.

Every interval but ``minute`` is built from the stored 1-minute bars (ticks.bars.resample). Where a
bucket has no minute bar under it -- a Kite backfill of day or 60-minute bars older than minute
retention, or a stretch the minute backfill never reached -- the stored bar of that interval is served
instead (``bars_prefer``). So the answer for one bucket never mixes the two sources, and a range is
read in one query whatever its length.
"""

from collections.abc import Collection
from datetime import datetime
from typing import Final

import pandas as pd
from django.db.models import OuterRef, Q, QuerySet, Subquery

from tickerproject.exceptions import ApplicationError, NotFoundError
from ticks.bars.intervals import MINUTE
from ticks.bars.resample import (
    COLUMNS,
    bar_window,
    bars_frame,
    bars_in_window,
    bars_prefer,
    bars_resample,
    empty_frame,
)
from ticks.exchange_calendar import TradingCalendar, market_calendar
from ticks.market_time import IST, MARKET_OPEN
from ticks.models import Bar, Instrument

ROW_FIELDS: Final = ("start", *COLUMNS)

BarRow = tuple[datetime, float, float, float, float, int, int]


def instrument_resolve(*, key: str) -> Instrument:
    """An instrument by token (``"256265"``) or Kite's ``EXCHANGE:TRADINGSYMBOL`` (one query).

    Expired and reloaded instruments resolve too: their bars outlive them. Kite reuses a token after
    expiry, so for a token the active row wins, then the newest load. ApplicationError (400) for a key
    that is neither form, NotFoundError (404) for one nothing matches; both name ``instrument``.
    """
    key = key.strip()
    if key.isdigit():
        found = (
            Instrument.objects.filter(instrument_token=int(key)).order_by("-is_active", "-loaded_at").first()
        )
    else:
        exchange, colon, symbol = key.partition(":")
        if not (colon and exchange and symbol):
            raise ApplicationError(
                "Give an instrument token or EXCHANGE:TRADINGSYMBOL, e.g. NSE:NIFTY 50.", field="instrument"
            )
        found = Instrument.objects.filter(exchange=exchange.upper(), tradingsymbol=symbol).first()
    if found is None:
        raise NotFoundError(f"No instrument {key!r}.", field="instrument")
    return found


def bars_minute_rows(*, instrument_token: int, start: datetime, end: datetime) -> QuerySet[Bar, BarRow]:
    """Stored 1-minute bars starting in [start, end], oldest first, as ROW_FIELDS tuples (lazy)."""
    return (
        Bar.objects.filter(
            instrument_token=instrument_token, interval=MINUTE, start__gte=start, start__lte=end
        )
        .order_by("start")
        .values_list(*ROW_FIELDS)
    )


def bars_read(*, instrument_token: int, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Bars of ``interval`` in Kite's window for [start, end] (one query), indexed by start in IST.

    Intraday bars start in [start, end] and are whole: the last may take minutes after ``end``. Day
    bars are stamped 00:00 IST (see ticks.bars.resample.bar_window). A bar of a day still trading
    covers the minutes stored so far.
    """
    window = bar_window(interval, start, end)
    wanted = Q(interval=MINUTE, start__gte=window.minutes_from, start__lt=window.minutes_until)
    if interval != MINUTE:
        wanted |= Q(interval=interval, start__gte=window.first, start__lte=window.last)
    rows = list(
        Bar.objects.filter(wanted, instrument_token=instrument_token)
        .order_by("start")
        .values_list("interval", *ROW_FIELDS)
    )
    minutes = _frame([row[1:] for row in rows if row[0] == MINUTE])
    stored = _frame([row[1:] for row in rows if row[0] != MINUTE])
    return bars_in_window(bars_prefer(bars_resample(minutes, interval), stored), window)


def bars_oi_previous_close(
    *, tokens: Collection[int], at: datetime, calendar: TradingCalendar | None = None
) -> dict[int, int]:
    """Each listed token's OI at the close of the session before the one ``at`` belongs to: the OI of
    its newest stored 1-minute bar starting before that session's open (one query). Tokens with no
    such bar (or no instrument row) are left out.

    The session ``at`` belongs to is the latest one open by then on ``calendar`` (default
    market_calendar()): before 09:15, on a weekend or a holiday, the data on screen is the last
    session's, and its change in OI is measured from the close before it. Per token the bar is one
    backward step on the (instrument, interval, start) index, however many minutes are stored.
    """
    opened = session_opened_by(at, calendar or market_calendar())
    newest = (
        Bar.objects.filter(instrument_token=OuterRef("instrument_token"), interval=MINUTE, start__lt=opened)
        .order_by("-start")
        .values("oi")[:1]
    )
    rows = (
        Instrument.objects.filter(instrument_token__in=tokens)
        .annotate(oi_prev=Subquery(newest))
        .values_list("instrument_token", "oi_prev")
        .distinct()  # Kite reuses tokens: one row per listing
    )
    return {token: oi for token, oi in rows if oi is not None}


def session_opened_by(moment: datetime, calendar: TradingCalendar) -> datetime:
    """The open (09:15 IST) of the latest session that has opened by ``moment`` (an aware datetime)."""
    local = moment.astimezone(IST)
    day = local.date()
    if not (calendar.is_session(day) and local.time() >= MARKET_OPEN):
        day = calendar.previous_session(day)
    return datetime.combine(day, MARKET_OPEN, tzinfo=IST)


def bar_rows(bars: pd.DataFrame) -> list[BarRow]:
    """A frame's bars as ROW_FIELDS tuples of Python values (the start an aware IST Timestamp)."""
    return list(bars.itertuples(name=None))


def _frame(rows: list[tuple[datetime, float, float, float, float, int, int]]) -> pd.DataFrame:
    if not rows:
        return empty_frame()
    return bars_frame(*zip(*rows, strict=True))
