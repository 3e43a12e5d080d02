"""Reads of bars: one query for any range, stored bars where no minute lies, kitesim's candles as oracle."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kitesim.paths import session_open_epoch
from tests.ticks.bars.kite_oracle import NIFTY_50, KiteOracle, as_rows, oracle
from tests.ticks.factories import OptionFactory
from tickerproject.exceptions import ApplicationError, NotFoundError
from ticks.bars.intervals import INTERVAL_MINUTES
from ticks.bars.records import BarRecord
from ticks.bars.selectors import (
    bar_rows,
    bars_minute_rows,
    bars_oi_previous_close,
    bars_read,
    instrument_resolve,
    session_opened_by,
)
from ticks.bars.services import bars_upsert
from ticks.exchange_calendar import TradingCalendar
from ticks.market_time import IST

__all__ = ["oracle"]  # the module-scoped kitesim fixture

pytestmark = pytest.mark.django_db

TOKEN = 9_604_354
DAY = date(2026, 3, 12)


def _ist(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=IST)


def _minutes(day: date, count: int = 375, token: int = TOKEN, price: float = 100.0) -> list[BarRecord]:
    first = _ist(day, 9, 15).timestamp()
    return [
        BarRecord(
            token, "minute", first + 60 * k, price + k, price + k + 1, price + k - 1, price + k + 0.5, 10, k
        )
        for k in range(count)
    ]


# -- instruments -------------------------------------------------------------------------------------


def test_an_instrument_resolves_by_token_or_exchange_and_symbol(django_assert_num_queries: Any) -> None:
    option = OptionFactory(expiry=date(2026, 12, 1))

    with django_assert_num_queries(1):
        assert instrument_resolve(key=str(option.instrument_token)) == option
    with django_assert_num_queries(1):
        assert instrument_resolve(key=f"nfo:{option.tradingsymbol}") == option


def test_a_reused_token_resolves_to_the_active_instrument() -> None:
    expired = OptionFactory(expiry=date(2026, 1, 29), instrument_token=777, is_active=False)
    active = OptionFactory(expiry=date(2026, 12, 1), instrument_token=777)

    assert instrument_resolve(key="777") == active
    active.delete()
    assert instrument_resolve(key="777") == expired  # bars outlive the instrument's listing


@pytest.mark.parametrize(("key", "error"), [("NIFTY", ApplicationError), (":X", ApplicationError),
                                             ("NSE:", ApplicationError), ("NSE:NOPE", NotFoundError),
                                             ("123", NotFoundError)])  # fmt: skip
def test_a_bad_or_unknown_instrument_is_refused_naming_the_field(key: str, error: type) -> None:
    with pytest.raises(error) as refused:
        instrument_resolve(key=key)

    assert type(refused.value) is error and refused.value.field == "instrument"


# -- bars ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", list(INTERVAL_MINUTES))
def test_any_range_at_any_interval_is_one_query(interval: str, django_assert_num_queries: Any) -> None:
    for day in (DAY, DAY + timedelta(days=1)):
        bars_upsert(records=_minutes(day))

    with django_assert_num_queries(1):
        one_day = bars_read(
            instrument_token=TOKEN, interval=interval, start=_ist(DAY, 0, 0), end=_ist(DAY, 23, 59)
        )
    with django_assert_num_queries(1):
        two_days = bars_read(
            instrument_token=TOKEN,
            interval=interval,
            start=_ist(DAY, 0, 0),
            end=_ist(DAY, 0, 0) + timedelta(days=2),
        )

    size = INTERVAL_MINUTES[interval]
    per_day = 1 if size == 0 else -(-375 // size)
    assert (len(one_day), len(two_days)) == (per_day, 2 * per_day)


def test_minutes_are_read_back_in_ist_and_only_the_instruments_own() -> None:
    bars_upsert(records=_minutes(DAY, count=5) + _minutes(DAY, count=5, token=TOKEN + 1, price=7.0))

    bars = bars_read(instrument_token=TOKEN, interval="minute", start=_ist(DAY, 9, 16), end=_ist(DAY, 9, 18))
    rows = list(bars_minute_rows(instrument_token=TOKEN, start=_ist(DAY, 9, 16), end=_ist(DAY, 9, 18)))

    assert [row[0] for row in bar_rows(bars)] == [_ist(DAY, 9, m) for m in (16, 17, 18)]
    assert [str(row[0].tzinfo) for row in bar_rows(bars)] == ["IST"] * 3
    assert [row[1:] for row in bar_rows(bars)] == [row[1:] for row in rows]
    assert [row[1] for row in rows] == [101.0, 102.0, 103.0]


def test_a_bar_starting_in_range_is_whole_even_past_to() -> None:
    bars_upsert(records=_minutes(DAY))

    bars = bars_read(
        instrument_token=TOKEN, interval="60minute", start=_ist(DAY, 9, 15), end=_ist(DAY, 9, 15)
    )

    assert len(bars) == 1
    assert bars.iloc[0]["volume"] == 600 and bars.iloc[0]["close"] == 100 + 59 + 0.5


def test_stored_day_bars_fill_days_older_than_the_minutes() -> None:
    old = DAY - timedelta(days=1)
    midnight = datetime.combine(old, time.min, tzinfo=IST).timestamp()
    backfilled = BarRecord(TOKEN, "day", midnight, 50.0, 60.0, 40.0, 55.0, 999, 5, source="kite")
    stale = BarRecord(TOKEN, "day", midnight + 86_400, 1.0, 1.0, 1.0, 1.0, 1, 1, source="kite")
    bars_upsert(records=[backfilled, stale, *_minutes(DAY)])

    bars = bars_read(instrument_token=TOKEN, interval="day", start=_ist(old, 0, 0), end=_ist(DAY, 15, 30))

    assert [row[0].date() for row in bar_rows(bars)] == [old, DAY]
    assert bar_rows(bars)[0][1:] == (50.0, 60.0, 40.0, 55.0, 999, 5)
    assert bar_rows(bars)[1][1:] == (100.0, 475.0, 99.0, 474.5, 3750, 374)  # from the minutes, not `stale`


def test_no_bars_is_an_empty_frame() -> None:
    bars = bars_read(instrument_token=TOKEN, interval="15minute", start=_ist(DAY, 0, 0), end=_ist(DAY, 23, 0))

    assert bars.empty and bar_rows(bars) == []


# -- kitesim as the oracle -----------------------------------------------------------------------------

# kitesim's session follows the host's date, so the two days compared do: make test-clock runs one
# intraday interval and the day's at each moved clock (the other intervals' cutting is the same on any day).
HOST_DATE_INTERVALS = ("15minute", "day")


def _intervals(*, resampled_only: bool) -> list[Any]:
    names = [name for name in INTERVAL_MINUTES if not (resampled_only and name == "minute")]
    return [
        pytest.param(name, marks=pytest.mark.clock) if name in HOST_DATE_INTERVALS else name for name in names
    ]


@pytest.mark.integration
@pytest.mark.parametrize("interval", _intervals(resampled_only=True))
def test_resampled_bars_equal_kitesims_own_candles(oracle: KiteOracle, interval: str) -> None:
    for token in (oracle.option, NIFTY_50):
        assert oracle.store_minutes(token) == 2 * 375
        start, end = oracle.whole_days

        ours = bar_rows(bars_read(instrument_token=token, interval=interval, start=start, end=end))

        theirs = as_rows(oracle.candles(token, interval, start, end))
        assert len(theirs) == 2 * (1 if interval == "day" else -(-375 // INTERVAL_MINUTES[interval]))
        assert ours == theirs


@pytest.mark.integration
@pytest.mark.parametrize("interval", _intervals(resampled_only=False))
def test_an_unaligned_window_is_cut_as_kitesim_cuts_it(oracle: KiteOracle, interval: str) -> None:
    oracle.store_minutes(oracle.option)
    first, second = oracle.days
    # from mid-bar on the first day to mid-bar on the second; and a `to` before the second day opens
    windows = [(_ist(first, 9, 20, 30), _ist(second, 13, 5, 10)), (_ist(first, 14, 2), _ist(second, 9, 0))]
    for start, end in windows:
        ours = bar_rows(bars_read(instrument_token=oracle.option, interval=interval, start=start, end=end))

        assert ours == as_rows(oracle.candles(oracle.option, interval, start, end)), (start, end)
    assert datetime.fromtimestamp(session_open_epoch(second), IST) > windows[1][1]


# -- OI at the previous session's close (the dashboard's change in OI) ----------------------------------

# Tuesday 2026-12-01; Christmas (Friday 2026-12-25) is closed on this calendar.
TUESDAY, MONDAY, FRIDAY = date(2026, 12, 1), date(2026, 11, 30), date(2026, 11, 27)
CALENDAR = TradingCalendar(holidays=frozenset({date(2026, 12, 25)}), known_until=date(2026, 12, 31))


def _oi_bar(token: int, day: date, hour: int, minute: int, oi: int, interval: str = "minute") -> BarRecord:
    return BarRecord(token, interval, _ist(day, hour, minute).timestamp(), 10.0, 11.0, 9.0, 10.5, 5, oi)


@pytest.mark.parametrize(
    ("moment", "opened"),
    [
        (_ist(TUESDAY, 10, 0), _ist(TUESDAY, 9, 15)),
        (_ist(TUESDAY, 9, 15), _ist(TUESDAY, 9, 15)),
        (_ist(TUESDAY, 9, 14, 59), _ist(MONDAY, 9, 15)),  # pre-open: Monday's data is on screen
        (_ist(TUESDAY, 23, 0), _ist(TUESDAY, 9, 15)),
        (_ist(date(2026, 11, 29), 12, 0), _ist(FRIDAY, 9, 15)),  # a Sunday
        (_ist(date(2026, 12, 25), 12, 0), _ist(date(2026, 12, 24), 9, 15)),  # a holiday
        (datetime(2026, 12, 1, 4, 0, tzinfo=UTC), _ist(TUESDAY, 9, 15)),  # 09:30 IST, given in UTC
    ],
)
def test_the_session_a_moment_belongs_to_is_the_latest_opened_by_then(
    moment: datetime, opened: datetime
) -> None:
    assert session_opened_by(moment, CALENDAR) == opened


def test_oi_previous_close_is_the_newest_minute_before_the_sessions_open(
    django_assert_num_queries: Any,
) -> None:
    traded, quiet, unstored = (
        OptionFactory(expiry=date(2026, 12, 8), strike=Decimal(k)).instrument_token
        for k in (25000, 25500, 26000)
    )
    bars_upsert(
        records=[
            _oi_bar(traded, MONDAY, 15, 28, 900),
            _oi_bar(traded, MONDAY, 15, 29, 1_000),  # the close before Tuesday's open
            _oi_bar(traded, TUESDAY, 9, 15, 5_000),  # Tuesday's own: not the previous close
            _oi_bar(traded, TUESDAY, 0, 0, 7_000, interval="day"),  # a day bar: minutes only
            _oi_bar(quiet, FRIDAY, 14, 2, 300),  # no trade on Monday: Friday's last minute
        ]
    )

    with django_assert_num_queries(1):
        oi = bars_oi_previous_close(
            tokens=[traded, quiet, unstored, 42], at=_ist(TUESDAY, 11, 0), calendar=CALENDAR
        )

    assert oi == {traded: 1_000, quiet: 300}
    assert (
        bars_oi_previous_close(tokens=[traded], at=_ist(TUESDAY, 8, 0), calendar=CALENDAR) == {}
    )  # before Monday
    assert bars_oi_previous_close(tokens=[traded], at=_ist(date(2026, 12, 2), 10, 0), calendar=CALENDAR) == {
        traded: 5_000
    }


def test_a_reused_token_gives_one_previous_close() -> None:
    OptionFactory(expiry=date(2026, 11, 24), instrument_token=777, is_active=False)
    OptionFactory(expiry=date(2026, 12, 8), instrument_token=777)
    bars_upsert(records=[_oi_bar(777, MONDAY, 15, 29, 1_234)])

    assert bars_oi_previous_close(tokens=[777], at=_ist(TUESDAY, 10, 0), calendar=CALENDAR) == {777: 1_234}
