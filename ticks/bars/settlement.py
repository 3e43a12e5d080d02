"""Settle closed minutes against Kite's own candles, and fill the minutes the feed never saw.

Kite's WebSocket is sampled: a live bar can miss the trade that set a high or a low. After a minute
closes (on the market clock, see ticks.bars.watched), Kite's 1-minute candle replaces the live bar
(source "kite", settled) and the difference is counted. The watched indices and futures are settled
every run; ATM options follow, nearest the money first, while the run's time budget lasts: the
historical bucket (3/s per api_key, shared with backfills and gap fills) is what bounds them.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis

from ticks.bars.intervals import MINUTE
from ticks.bars.kite_history import KiteHistory, Window, candle_flags, candle_records
from ticks.bars.metrics import SETTLE_DIFF, SETTLE_PRICE_DIFF, SETTLED
from ticks.bars.records import BarRecord
from ticks.bars.services import bars_upsert
from ticks.bars.watched import (
    WatchedUnderlying,
    bars_clock,
    closed_minutes,
    current_session,
    feed_clock,
    latest_prices,
    options_nearest_the_money,
    session_open,
    watched_clock_tokens,
    watched_underlyings,
)
from ticks.exchange_calendar import market_calendar
from ticks.models import Bar, Instrument

PRICE_FIELDS = ("open", "high", "low", "close")
COMPARED_FIELDS = (*PRICE_FIELDS, "volume")
MAX_GAP_REQUESTS = 8  # more separate holes than this: one request over all of them
# A minute is settled once it ended this long ago on the market clock: Kite's candle of a minute that
# has only just closed may still take its last trades.
SETTLE_AFTER = timedelta(seconds=60)


@dataclass(slots=True)
class SettleResult:
    tokens: list[int] = field(default_factory=list)
    replaced: int = 0
    inserted: int = 0
    differences: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COMPARED_FIELDS, 0))


# --- pure ----------------------------------------------------------------------------------------


def bar_differences(live: Bar, kite: BarRecord) -> dict[str, float]:
    """Absolute differences of the compared fields (0 where they agree)."""
    return {name: abs(float(getattr(live, name)) - float(getattr(kite, name))) for name in COMPARED_FIELDS}


def missing_runs(expected: list[datetime], stored: set[datetime]) -> list[list[datetime]]:
    """Contiguous runs of the expected minute starts that are not stored."""
    runs: list[list[datetime]] = []
    for minute in expected:
        if minute in stored:
            continue
        if runs and minute - runs[-1][-1] == timedelta(minutes=1):
            runs[-1].append(minute)
        else:
            runs.append([minute])
    return runs


# --- settle --------------------------------------------------------------------------------------


def _first_unsettled(token: int, day_open: datetime) -> datetime:
    """Where the token's settling resumes: its earliest unsettled bar of the day (a live write that
    landed after later minutes were settled, a lagging feed's), else the minute after its newest
    settled one, else the open."""
    minutes = Bar.objects.filter(instrument_token=token, interval=MINUTE, start__gte=day_open)
    earliest_live = minutes.filter(settled=False).order_by("start").values_list("start", flat=True).first()
    if earliest_live is not None:
        return earliest_live
    newest = minutes.filter(settled=True).order_by("-start").values_list("start", flat=True).first()
    return day_open if newest is None else newest + timedelta(minutes=1)


def _settle_token(history: KiteHistory, instrument: Instrument, window: Window, result: SettleResult) -> None:
    continuous, oi = candle_flags(instrument, MINUTE)
    candles = history.window(instrument.instrument_token, MINUTE, window, continuous=continuous, oi=oi)
    records = candle_records(instrument.instrument_token, MINUTE, candles, settled=True)
    live = {
        bar.start.timestamp(): bar
        for bar in Bar.objects.filter(
            instrument_token=instrument.instrument_token,
            interval=MINUTE,
            start__gte=window.start,
            start__lte=window.end,
        )
    }
    for record in records:
        bar = live.get(record.start)
        if bar is None:
            result.inserted += 1
            continue
        result.replaced += 1
        for name, diff in bar_differences(bar, record).items():
            if name in PRICE_FIELDS:
                SETTLE_PRICE_DIFF.labels(name).observe(diff)
            if diff > 1e-9:
                result.differences[name] += 1
                SETTLE_DIFF.labels(name).inc()
    bars_upsert(records=records)
    result.tokens.append(instrument.instrument_token)


def _settle_order(
    watched: Iterable[WatchedUnderlying], client: redis.Redis
) -> tuple[list[Instrument], list[Instrument]]:
    core, options = [], []
    for underlying in watched:
        core += underlying.core
        index_price = None
        if underlying.index is not None:
            index_price = latest_prices(client, [underlying.index.instrument_token]).get(
                underlying.index.instrument_token
            )
        options += options_nearest_the_money(underlying.options, index_price)
    return core, options


def bars_settle(*, client: redis.Redis, history: KiteHistory, budget_s: float) -> SettleResult:
    """Replace the closed, unsettled minutes of today's session with Kite's candles.

    Indices and futures always; options nearest the money first until ``budget_s`` (real seconds:
    a pacing budget for the beat period, not market time) is spent.
    """
    started = time.monotonic()
    result = SettleResult()
    now = feed_clock(client, watched_clock_tokens())
    if now is None:  # nothing has ticked: no live bar to settle
        return result
    day = current_session(now, market_calendar())
    minutes = closed_minutes(day, now - SETTLE_AFTER)
    if not minutes:
        return result
    core, options = _settle_order(watched_underlyings(day=day), client)
    for position, instrument in enumerate([*core, *options]):
        if position >= len(core) and time.monotonic() - started > budget_s:
            break
        first = _first_unsettled(instrument.instrument_token, session_open(day))
        if first <= minutes[-1]:
            _settle_token(history, instrument, Window(first, minutes[-1]), result)
    SETTLED.labels("replaced").inc(result.replaced)
    SETTLED.labels("inserted").inc(result.inserted)
    return result


# --- gaps ----------------------------------------------------------------------------------------


def _fill_token(history: KiteHistory, instrument: Instrument, minutes: list[datetime]) -> int:
    token = instrument.instrument_token
    stored = set(
        Bar.objects.filter(
            instrument_token=token, interval=MINUTE, start__gte=minutes[0], start__lte=minutes[-1]
        ).values_list("start", flat=True)
    )
    runs = missing_runs(minutes, stored)
    if not runs:
        return 0
    windows = [Window(run[0], run[-1]) for run in runs]
    if len(windows) > MAX_GAP_REQUESTS:
        windows = [Window(runs[0][0], runs[-1][-1])]
    missing = {m.timestamp() for run in runs for m in run}
    continuous, oi = candle_flags(instrument, MINUTE)
    records: list[BarRecord] = []
    for window in windows:
        candles = history.window(token, MINUTE, window, continuous=continuous, oi=oi)
        records += [r for r in candle_records(token, MINUTE, candles, settled=True) if r.start in missing]
    return bars_upsert(records=records)


def bars_fill_gaps(*, client: redis.Redis, history: KiteHistory) -> dict[int, int]:
    """Fetch only the closed 1-minute bars missing for the watched indices and futures.

    The session is the market clock's current one: today's once 09:15 has passed, otherwise (before
    the open, at weekends, on exchange holidays) the previous session, so a service started before
    the open still has the last session's bars. Returns bars written per token.
    """
    now = bars_clock(client, watched_clock_tokens())
    day = current_session(now, market_calendar())
    minutes = closed_minutes(day, now)
    written: dict[int, int] = {}
    if not minutes:
        return written
    for underlying in watched_underlyings(day=day):
        for instrument in underlying.core:
            written[instrument.instrument_token] = _fill_token(history, instrument, minutes)
    SETTLED.labels("filled").inc(sum(written.values()))
    return written
