"""Backfill bars from Kite's candles: resumable, idempotent, span- and rate-limited.

Progress is kept per (interval, token) as the set of IST days already stored in full, in Redis
(``bars:backfill:<interval>:<token>``). A day counts as done once a request covered the whole of it
and its session had closed on the market clock; a re-run skips done days (``force`` refetches them),
so an interrupted run continues where it stopped and a repeated one asks Kite for nothing. Writes are
upserts, so even a forced re-run leaves one row per (token, interval, start).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import redis

from ticks.bars.intervals import KITE_MAX_SPAN_DAYS
from ticks.bars.kite_history import KiteHistory, Window, candle_flags, candle_records
from ticks.bars.services import bars_upsert
from ticks.bars.watched import session_close, watched_underlyings
from ticks.exchange_calendar import TradingCalendar, market_calendar
from ticks.market_time import IST
from ticks.models import Instrument

PROGRESS_KEY = "bars:backfill:{interval}:{token}"


class BackfillArgumentError(ValueError):
    """A target or range that cannot be backfilled; ``argument`` names the option at fault."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


@dataclass(frozen=True, slots=True)
class BackfillTarget:
    instrument_token: int
    label: str
    continuous: bool
    oi: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    days: tuple[date, ...]  # sessions the request covers
    window: Window
    complete_days: tuple[date, ...]  # of those, the days it covers whole and that have closed


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    target: BackfillTarget
    chunk: int
    chunks: int
    window: Window
    written: int
    total_written: int


@dataclass(frozen=True, slots=True)
class BackfillResult:
    chunks: int
    requests: int
    written: int
    skipped_days: int


# --- pure planning -------------------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=IST)


def _covers_day(day: date, start: datetime, end: datetime, now: datetime) -> bool:
    return start <= _day_start(day) and end >= session_close(day) and session_close(day) <= now


def backfill_chunks(
    start: datetime,
    end: datetime,
    now: datetime,
    interval: str,
    done: set[date],
    *,
    chunk_days: int,
    calendar: TradingCalendar,
) -> list[Chunk]:
    """Requests for the sessions of [start, end] not yet done, each within ``chunk_days`` calendar days.

    Weekends and exchange holidays are never asked for, and do not split a run of pending sessions.
    """
    end = min(end, now)
    first, last = start.astimezone(IST).date(), end.astimezone(IST).date()
    span = min(chunk_days, KITE_MAX_SPAN_DAYS[interval])
    days = (first + timedelta(days=k) for k in range((last - first).days + 1))
    pending = [day for day in days if calendar.is_session(day) and day not in done]
    chunks: list[Chunk] = []
    run: list[date] = []
    for day in pending:
        contiguous = run and calendar.sessions_between(run[-1] + timedelta(days=1), day) == 0
        if run and (not contiguous or (day - run[0]).days >= span):
            chunks.append(_chunk(run, start, end, now))
            run = []
        run.append(day)
    if run:
        chunks.append(_chunk(run, start, end, now))
    return chunks


def _chunk(days: list[date], start: datetime, end: datetime, now: datetime) -> Chunk:
    window = Window(
        max(start, _day_start(days[0])), min(end, _day_start(days[-1]) + timedelta(days=1, seconds=-1))
    )
    complete = tuple(d for d in days if _covers_day(d, start, end, now))
    return Chunk(tuple(days), window, complete)


# --- targets -------------------------------------------------------------------------------------


def _target(instrument: Instrument, interval: str) -> BackfillTarget:
    continuous, oi = candle_flags(instrument, interval)
    return BackfillTarget(
        instrument.instrument_token, f"{instrument.exchange}:{instrument.tradingsymbol}", continuous, oi
    )


def backfill_targets(
    *,
    interval: str,
    day: date,
    underlying: str | None = None,
    token: int | None = None,
    symbol: str | None = None,
) -> list[BackfillTarget]:
    """The instruments to backfill: an underlying's index, futures and watched options, one token, or one symbol."""
    if underlying is not None:
        watched = watched_underlyings(day=day, underlying=underlying)[0]
        instruments = [*watched.core, *watched.options]
        if not instruments:
            raise BackfillArgumentError("underlying", f"no instruments for underlying {underlying!r}")
        return [_target(i, interval) for i in instruments]
    if token is not None:
        instrument = Instrument.objects.filter(instrument_token=token, is_active=True).first()
        if instrument is None:
            raise BackfillArgumentError("token", f"unknown instrument token {token}")
        return [_target(instrument, interval)]
    if symbol is not None:
        exchange, _, tradingsymbol = symbol.partition(":")
        instrument = Instrument.objects.filter(
            exchange=exchange, tradingsymbol=tradingsymbol, is_active=True
        ).first()
        if not tradingsymbol or instrument is None:
            raise BackfillArgumentError(
                "symbol", f"unknown instrument {symbol!r} (want EXCHANGE:TRADINGSYMBOL)"
            )
        return [_target(instrument, interval)]
    raise BackfillArgumentError("underlying", "give one of --underlying, --token or --symbol")


# --- the run -------------------------------------------------------------------------------------


def _progress_key(interval: str, token: int) -> str:
    return PROGRESS_KEY.format(interval=interval, token=token)


def _done_days(client: redis.Redis, interval: str, token: int) -> set[date]:
    return {date.fromisoformat(raw.decode()) for raw in client.smembers(_progress_key(interval, token))}


def bars_backfill(
    *,
    targets: list[BackfillTarget],
    interval: str,
    start: datetime,
    end: datetime,
    now: datetime,
    history: KiteHistory,
    client: redis.Redis,
    force: bool = False,
    chunk_days: int | None = None,
    on_progress: Callable[[BackfillProgress], None] = lambda progress: None,
) -> BackfillResult:
    span = chunk_days or KITE_MAX_SPAN_DAYS[interval]
    calendar = market_calendar()
    plans: list[tuple[BackfillTarget, Chunk]] = []
    skipped = 0
    for target in targets:
        done = set() if force else _done_days(client, interval, target.instrument_token)
        chunks = backfill_chunks(start, end, now, interval, done, chunk_days=span, calendar=calendar)
        plans += [(target, chunk) for chunk in chunks]
        skipped += sum(1 for day in done if start.astimezone(IST).date() <= day <= end.astimezone(IST).date())
    written = 0
    for number, (target, chunk) in enumerate(plans, start=1):
        candles = history.window(
            target.instrument_token, interval, chunk.window, continuous=target.continuous, oi=target.oi
        )
        records = candle_records(target.instrument_token, interval, candles, settled=True)
        written += bars_upsert(records=records)
        if chunk.complete_days:
            client.sadd(
                _progress_key(interval, target.instrument_token),
                *(d.isoformat() for d in chunk.complete_days),
            )
        on_progress(BackfillProgress(target, number, len(plans), chunk.window, len(records), written))
    return BackfillResult(len(plans), history.requests, written, skipped)
