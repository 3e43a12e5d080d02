"""Fetch the previous session's closing minutes of the planned options, for the change in OI.

The dashboard's change in OI is ``oi - oi_prev``, where ``oi_prev`` is the OI of an option's newest
stored minute before the session's open (ticks.bars.selectors.bars_oi_previous_close). The feed
stores minutes only for what it streamed, so an option not streamed through the last close (a fresh
deployment, a strike that entered the ATM window today) has none. This asks Kite for the last
minutes of that session (oi=1), nearest the money first, while the run's time budget lasts.

A token is asked once per session: its outcome (its close was already stored, Kite's candles were
written, or Kite had none -- listed since) is kept in Redis (``bars:previous_close:<session>``), so the
beat's period only costs requests for strikes a re-plan added.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import redis

from ticks.bars.intervals import MINUTE
from ticks.bars.kite_history import KiteHistory, Window, candle_flags, candle_records
from ticks.bars.metrics import SETTLED
from ticks.bars.records import BarRecord
from ticks.bars.selectors import session_opened_by
from ticks.bars.services import bars_upsert
from ticks.bars.watched import latest_prices, options_nearest_the_money, session_close, session_open
from ticks.exchange_calendar import TradingCalendar, market_calendar
from ticks.models import Bar, Instrument
from ticks.selectors import OPTION_TYPES, underlying_index
from workers.selectors import feed_plan_current

DONE_KEY = "bars:previous_close:{day}"
DONE_TTL_S = 7 * 86_400  # a few sessions: the key of a session long gone expires by itself
# The close is read from the last minutes: a liquid option trades in every one of them.
CLOSE_WINDOW = timedelta(minutes=10)
STORED, FETCHED, NO_CANDLES = "stored", "kite", "none"
QUERY_CHUNK = 1_000  # tokens per IN (...) list: SQLite's bound-variable limit is far above it


@dataclass(slots=True)
class PreviousCloseResult:
    session: date  # whose close was wanted
    planned: int = 0  # option tokens in the plan
    remembered: int = 0  # settled on an earlier run this session
    stored: int = 0  # found with a stored close this run
    fetched: int = 0  # tokens whose candles were written
    bars: int = 0
    no_candles: int = 0  # Kite had none: listed since that session
    left: int = 0  # not reached within the budget: the next run takes them
    requests: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return {
            "session": self.session.isoformat(),
            "planned": self.planned,
            "remembered": self.remembered,
            "stored": self.stored,
            "fetched": self.fetched,
            "bars": self.bars,
            "no_candles": self.no_candles,
            "left": self.left,
            "requests": self.requests,
        }


# --- pure ----------------------------------------------------------------------------------------


def close_windows(day: date) -> tuple[Window, Window]:
    """The requests for one token, in order: the last minutes of ``day``; when Kite has no candle there
    (an option that did not trade near the close), the whole session, whose last candle is its close."""
    last = session_close(day) - timedelta(seconds=1)  # Kite's ``to`` is inclusive; 15:29 is the last minute
    return Window(session_close(day) - CLOSE_WINDOW, last), Window(session_open(day), last)


# --- reads ---------------------------------------------------------------------------------------


def _planned_options(client: redis.Redis) -> list[Instrument]:
    """The options the plan in force streams, each underlying's nearest the money first.

    Read from the plan's rows in force (``FeedPlan.assignments``): a version stores only its change.
    """
    plan = feed_plan_current()
    if plan is None:
        return []
    tokens = plan.assignments.filter(primary=True).values("instrument_token")
    options = Instrument.objects.filter(
        instrument_token__in=tokens, instrument_type__in=OPTION_TYPES, is_active=True
    ).order_by("name", "expiry", "strike", "instrument_type")
    by_underlying: dict[str, list[Instrument]] = {}
    for option in options:
        by_underlying.setdefault(option.name, []).append(option)
    ordered: list[Instrument] = []
    for name, chain in by_underlying.items():
        index = underlying_index(underlying=name)
        price = (
            None
            if index is None
            else latest_prices(client, [index.instrument_token]).get(index.instrument_token)
        )
        ordered += options_nearest_the_money(chain, price)
    return ordered


def _with_stored_close(tokens: Sequence[int], since: datetime, until: datetime) -> set[int]:
    """Tokens with a stored minute in [since, until): their close is known."""
    found: set[int] = set()
    for first in range(0, len(tokens), QUERY_CHUNK):
        found.update(
            Bar.objects.filter(
                instrument_token__in=tokens[first : first + QUERY_CHUNK],
                interval=MINUTE,
                start__gte=since,
                start__lt=until,
            )
            .values_list("instrument_token", flat=True)
            .distinct()
        )
    return found


def _remember(client: redis.Redis, day: date, outcomes: dict[int, str]) -> None:
    if not outcomes:
        return
    key = DONE_KEY.format(day=day.isoformat())
    with client.pipeline() as pipe:
        pipe.hset(key, mapping=outcomes)
        pipe.expire(key, DONE_TTL_S)
        pipe.execute()


def _remembered(client: redis.Redis, day: date) -> set[int]:
    return {int(token) for token in client.hkeys(DONE_KEY.format(day=day.isoformat()))}


# --- the run -------------------------------------------------------------------------------------


def _fetch_close(history: KiteHistory, instrument: Instrument, day: date) -> list[BarRecord]:
    token = instrument.instrument_token
    continuous, oi = candle_flags(instrument, MINUTE)
    for window in close_windows(day):
        candles = history.window(token, MINUTE, window, continuous=continuous, oi=oi)
        if candles:
            return candle_records(token, MINUTE, candles, settled=True)  # a closed session: final
    return []


def _pending(
    client: redis.Redis, options: list[Instrument], day: date, opened: datetime, result: PreviousCloseResult
) -> list[Instrument]:
    """The options still without a close: not settled on an earlier run, none stored since; those found
    stored are remembered."""
    remembered = _remembered(client, day)
    pending = [o for o in options if o.instrument_token not in remembered]
    result.remembered = len(options) - len(pending)
    stored = _with_stored_close([o.instrument_token for o in pending], close_windows(day)[0].start, opened)
    _remember(client, day, dict.fromkeys(stored, STORED))
    result.stored = len(stored)
    return [o for o in pending if o.instrument_token not in stored]


def bars_previous_close(
    *,
    client: redis.Redis,
    history: KiteHistory,
    now: datetime,
    budget_s: float,
    calendar: TradingCalendar | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> PreviousCloseResult:
    """Store Kite's closing minutes of the previous session for the planned options that lack them.

    ``now`` is the market clock (the feeds' exchange time); ``budget_s`` is real seconds (a pacing
    budget for the beat period, like settlement's): the tokens not reached wait for the next run.
    """
    calendar = calendar or market_calendar()
    started, requests_before = monotonic(), history.requests
    opened = session_opened_by(now, calendar)
    day = calendar.previous_session(opened.date())
    options = _planned_options(client)
    result = PreviousCloseResult(session=day, planned=len(options))
    pending = _pending(client, options, day, opened, result)
    for position, instrument in enumerate(pending):
        if monotonic() - started > budget_s:
            result.left = len(pending) - position
            break
        records = _fetch_close(history, instrument, day)
        result.bars += bars_upsert(records=records)
        result.fetched += bool(records)
        result.no_candles += not records
        _remember(client, day, {instrument.instrument_token: FETCHED if records else NO_CANDLES})
    result.requests = history.requests - requests_before
    SETTLED.labels("previous_close").inc(result.bars)
    return result
