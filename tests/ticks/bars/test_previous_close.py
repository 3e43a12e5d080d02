"""The options' previous close from Kite (the change in OI from the first morning).

Unit tests drive ``bars_previous_close`` with a fake history client (what is asked, for which window,
within which budget, and what is remembered); the integration test runs ``bars.previous_close``
against kitesim and reads the result back the way the dashboard does.
"""

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import redis

from tests.ticks.bars.kite_world import NIFTY_50, KiteWorld, feed_clock_at
from tests.ticks.factories import BrokerAccountFactory, FutureFactory, OptionFactory
from tests.workers.plan_factories import FeedAssignmentFactory, FeedPlanFactory
from ticks.bars.kite_history import Window
from ticks.bars.previous_close import DONE_KEY, bars_previous_close, close_windows
from ticks.bars.records import BarRecord
from ticks.bars.selectors import bars_oi_previous_close
from ticks.bars.services import bars_upsert
from ticks.bars.tasks import previous_close
from ticks.exchange_calendar import TradingCalendar
from ticks.feeds.latest import LATEST_KEY
from ticks.feeds.protocol import TICK_DTYPE
from ticks.market_time import IST
from ticks.models import Bar, Instrument
from workers.models import FeedPlan
from workers.selectors import feed_plan_current
from workers.services import feed_plan_refresh

FRIDAY, MONDAY, TUESDAY = date(2026, 11, 27), date(2026, 11, 30), date(2026, 12, 1)
CALENDAR = TradingCalendar(holidays=frozenset({date(2026, 12, 25)}), known_until=date(2026, 12, 31))
EXPIRY = date(2026, 12, 8)


def _ist(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=IST)


def _candle(day: date, hour: int, minute: int, oi: int) -> dict[str, Any]:
    return {
        "date": _ist(day, hour, minute),
        "open": 10,
        "high": 11,
        "low": 9,
        "close": 10.5,
        "volume": 75,
        "oi": oi,
    }


class FakeHistory:
    """KiteHistory's ``window`` over canned candles; each request takes ``cost_s`` of a fake clock."""

    def __init__(self, candles: dict[int, list[dict[str, Any]]], cost_s: float = 0.0) -> None:
        self.candles = candles
        self.cost_s = cost_s
        self.now = 0.0
        self.requests = 0
        self.asked: list[tuple[int, str, Window, bool]] = []

    def monotonic(self) -> float:
        return self.now

    def window(
        self, token: int, interval: str, window: Window, *, continuous: bool, oi: bool
    ) -> list[dict[str, Any]]:
        self.requests += 1
        self.now += self.cost_s
        self.asked.append((token, interval, window, oi))
        return [c for c in self.candles.get(token, []) if window.start <= c["date"] <= window.end]

    def tokens(self) -> list[int]:
        return [token for token, *_ in self.asked]


def _plan(*instruments: Instrument) -> FeedPlan:
    plan = FeedPlanFactory()
    account = BrokerAccountFactory()
    for instrument in instruments:
        FeedAssignmentFactory(plan=plan, account=account, instrument_token=instrument.instrument_token)
    return plan


def _options(*strikes: int) -> list[Instrument]:
    return [OptionFactory(expiry=EXPIRY, strike=Decimal(strike)) for strike in strikes]


def _bar(token: int, day: date, hour: int, minute: int, oi: int) -> BarRecord:
    return BarRecord(token, "minute", _ist(day, hour, minute).timestamp(), 10, 11, 9, 10, 0, oi)


def _index_at(client: redis.Redis, price: float) -> None:
    OptionFactory(
        name="NIFTY 50",
        tradingsymbol="NIFTY 50",
        instrument_token=NIFTY_50,
        exchange="NSE",
        segment="INDICES",
        instrument_type=Instrument.Type.EQ,
        strike=Decimal(0),
        expiry=None,
    )
    row = np.zeros(1, dtype=TICK_DTYPE)
    row["instrument_token"], row["last_price"] = NIFTY_50, price
    client.hset(LATEST_KEY, NIFTY_50, row.tobytes())


def _run(client: redis.Redis, history: FakeHistory, now: datetime, budget_s: float = 30.0) -> Any:
    return bars_previous_close(
        client=client,
        history=history,
        now=now,
        budget_s=budget_s,
        calendar=CALENDAR,
        monotonic=history.monotonic,
    )


# --- which tokens, which window ------------------------------------------------------------------


@pytest.mark.django_db
def test_only_planned_options_without_a_stored_close_are_asked_for_the_last_minutes(
    redis_client: redis.Redis,
) -> None:
    streamed, left_at_noon, new_today, unplanned = _options(24900, 25000, 25100, 25200)
    future = FutureFactory(expiry=EXPIRY)
    _plan(streamed, left_at_noon, new_today, future)
    bars_upsert(
        records=[
            _bar(streamed.instrument_token, MONDAY, 15, 29, 1_000),  # streamed through the close
            _bar(left_at_noon.instrument_token, MONDAY, 12, 0, 400),  # left the ATM window at noon
        ]
    )
    history = FakeHistory(
        {
            left_at_noon.instrument_token: [_candle(MONDAY, 15, 28, 640), _candle(MONDAY, 15, 29, 650)],
            new_today.instrument_token: [_candle(MONDAY, 15, 20, 70), _candle(MONDAY, 15, 27, 75)],
            unplanned.instrument_token: [_candle(MONDAY, 15, 29, 1)],
        }
    )
    now = _ist(TUESDAY, 10, 0)

    result = _run(redis_client, history, now)

    last_minutes = Window(_ist(MONDAY, 15, 20), _ist(MONDAY, 15, 29, 59))
    assert history.asked == [
        (left_at_noon.instrument_token, "minute", last_minutes, True),
        (new_today.instrument_token, "minute", last_minutes, True),
    ]
    assert result.as_dict() == {
        "session": "2026-11-30",
        "planned": 3,
        "remembered": 0,
        "stored": 1,
        "fetched": 2,
        "bars": 4,
        "no_candles": 0,
        "left": 0,
        "requests": 2,
    }
    tokens = [o.instrument_token for o in (streamed, left_at_noon, new_today)]
    assert bars_oi_previous_close(tokens=tokens, at=now, calendar=CALENDAR) == dict(
        zip(tokens, (1_000, 650, 75), strict=True)
    )
    kite = Bar.objects.filter(instrument_token=new_today.instrument_token)
    assert {(b.source, b.settled) for b in kite} == {("kite", True)}


@pytest.mark.django_db
def test_a_token_done_is_not_asked_again_that_session_but_is_for_the_next(redis_client: redis.Redis) -> None:
    (option,) = _options(25000)
    _plan(option)
    history = FakeHistory(
        {option.instrument_token: [_candle(MONDAY, 15, 29, 500), _candle(TUESDAY, 15, 29, 600)]}
    )

    _run(redis_client, history, _ist(TUESDAY, 10, 0))
    again = _run(redis_client, history, _ist(TUESDAY, 14, 0))

    assert history.requests == 1 and again.remembered == 1 and again.requests == 0
    assert redis_client.hgetall(DONE_KEY.format(day="2026-11-30")) == {
        str(option.instrument_token).encode(): b"kite"
    }
    # Wednesday's change in OI is measured from Tuesday's close: a new session, asked again.
    wednesday = _run(redis_client, history, _ist(date(2026, 12, 2), 9, 20))
    assert wednesday.fetched == 1 and history.asked[-1][2] == close_windows(TUESDAY)[0]


@pytest.mark.django_db
def test_a_quiet_close_falls_back_to_the_session_and_a_new_listing_is_remembered(
    redis_client: redis.Redis,
) -> None:
    quiet, listed_today = _options(26000, 26100)
    _plan(quiet, listed_today)
    history = FakeHistory({quiet.instrument_token: [_candle(MONDAY, 11, 2, 90), _candle(MONDAY, 14, 2, 120)]})
    now = _ist(TUESDAY, 10, 0)

    result = _run(redis_client, history, now)

    whole_monday = Window(_ist(MONDAY, 9, 15), _ist(MONDAY, 15, 29, 59))
    assert [(token, window) for token, _, window, _ in history.asked] == [
        (quiet.instrument_token, close_windows(MONDAY)[0]),
        (quiet.instrument_token, whole_monday),
        (listed_today.instrument_token, close_windows(MONDAY)[0]),
        (listed_today.instrument_token, whole_monday),
    ]
    assert (result.fetched, result.no_candles, result.bars) == (1, 1, 2)
    assert bars_oi_previous_close(
        tokens=[quiet.instrument_token, listed_today.instrument_token], at=now, calendar=CALENDAR
    ) == {quiet.instrument_token: 120}
    # Neither is asked again this session: Kite's answer for a closed session does not change.
    assert _run(redis_client, history, _ist(TUESDAY, 10, 1)).requests == 0
    assert redis_client.hget(DONE_KEY.format(day="2026-11-30"), listed_today.instrument_token) == b"none"


# --- the market clock and the exchange calendar --------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("now", "session"),
    [
        (_ist(TUESDAY, 9, 15), MONDAY),
        (_ist(TUESDAY, 8, 0), FRIDAY),  # pre-open: Monday is on screen, measured from Friday
        (_ist(MONDAY, 9, 14, 59), date(2026, 11, 26)),  # before Monday's open: Friday from Thursday
        (_ist(date(2026, 11, 28), 12, 0), date(2026, 11, 26)),  # Saturday: Friday on screen
        (_ist(date(2026, 12, 25), 11, 0), date(2026, 12, 23)),  # Christmas: Thursday from Wednesday
        (_ist(date(2026, 12, 28), 10, 0), date(2026, 12, 24)),  # Monday after it: from Thursday
    ],
)
def test_the_session_asked_follows_the_market_clock_and_the_calendar(
    redis_client: redis.Redis, now: datetime, session: date
) -> None:
    (option,) = _options(25000)
    _plan(option)
    history = FakeHistory({})

    result = _run(redis_client, history, now)

    assert result.session == session
    assert [window for _, _, window, _ in history.asked] == list(close_windows(session))
    assert close_windows(session)[0] == Window(_ist(session, 15, 20), _ist(session, 15, 29, 59))


@pytest.mark.django_db
def test_a_close_stored_before_a_holiday_is_found_across_it(redis_client: redis.Redis) -> None:
    (option,) = _options(25000)
    _plan(option)
    bars_upsert(records=[_bar(option.instrument_token, date(2026, 12, 24), 15, 29, 800)])
    history = FakeHistory({})

    result = _run(redis_client, history, _ist(date(2026, 12, 28), 10, 0))

    assert history.requests == 0 and result.stored == 1


# --- budget and order ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_budget_stops_the_run_nearest_the_money_first_and_the_next_run_continues(
    redis_client: redis.Redis,
) -> None:
    options = _options(24900, 25000, 25100, 25200, 25300)
    _plan(*options)
    _index_at(redis_client, 25_120.0)
    token = {int(o.strike): o.instrument_token for o in options}
    history = FakeHistory({}, cost_s=1.0)  # each token costs two requests: the close, then the session
    now = _ist(TUESDAY, 10, 0)

    first = _run(redis_client, history, now, budget_s=3.5)

    assert history.tokens()[::2] == [token[25100], token[25200]]
    assert (first.no_candles, first.left) == (2, 3)
    history.now = 100.0  # a later run: a fresh budget
    second = _run(redis_client, history, now, budget_s=100.0)
    assert history.tokens()[4::2] == [token[25000], token[25300], token[24900]]
    assert (second.remembered, second.no_candles, second.left) == (2, 3, 0)


@pytest.mark.django_db
def test_nothing_is_asked_without_a_plan(redis_client: redis.Redis) -> None:
    _options(25000)
    history = FakeHistory({})
    assert _run(redis_client, history, _ist(TUESDAY, 10, 0)).planned == 0
    assert history.requests == 0


# --- against kitesim -----------------------------------------------------------------------------


@pytest.mark.integration
def test_after_the_task_each_planned_option_has_the_oi_kitesim_opened_the_session_with(
    world: KiteWorld, redis_client: redis.Redis
) -> None:
    assert feed_plan_refresh(client=redis_client).errors == []
    plan_tokens = feed_plan_current().assignments.filter(primary=True).values("instrument_token")
    options = list(
        Instrument.objects.filter(instrument_token__in=plan_tokens, instrument_type__in=("CE", "PE"))
    )
    assert len(options) >= 10
    now = world.now().replace(microsecond=0)
    feed_clock_at(redis_client, now, [NIFTY_50])
    tokens = [o.instrument_token for o in options]
    assert bars_oi_previous_close(tokens=tokens, at=now) == {}  # a fresh deployment: "—" everywhere

    counts = previous_close.apply().get()

    assert counts["session"] == world.past_days(1)[0].isoformat()
    assert (counts["planned"], counts["fetched"], counts["left"]) == (len(options), len(options), 0)
    quotes = world.kite.quote([f"NFO:{o.tradingsymbol}" for o in options])
    # The day's OI moves one way, so {low, high} is {the open's, the current}: the open is the other one.
    opening = {q["instrument_token"]: q["oi_day_low"] + q["oi_day_high"] - q["oi"] for q in quotes.values()}
    assert bars_oi_previous_close(tokens=tokens, at=now) == opening
    assert any(q["oi"] != opening[q["instrument_token"]] for q in quotes.values())  # OI moved today
    assert previous_close.apply().get()["requests"] == 0
