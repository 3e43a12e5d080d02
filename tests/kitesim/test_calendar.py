"""kitesim on the exchange calendar: sessions, the start instant and the closed-market jump skip holidays."""

from datetime import date, datetime

from kitesim.clock import IST, SimClock
from kitesim.market import market_build
from kitesim.paths import (
    NiftyReplay,
    previous_trading_day,
    session_day,
    session_open_epoch,
    trading_days_between,
)
from kitesim.server import default_start_epoch, session_roll

CHRISTMAS = date(2026, 12, 25)  # a Friday, an XBOM holiday
THURSDAY, MONDAY = date(2026, 12, 24), date(2026, 12, 28)


def test_session_day_after_the_close_before_a_holiday_is_the_next_session() -> None:
    assert session_day(datetime(2026, 12, 24, 15, 30, tzinfo=IST).timestamp()) == MONDAY
    assert session_day(datetime(2026, 12, 25, 11, 0, tzinfo=IST).timestamp()) == MONDAY
    assert session_day(datetime(2026, 12, 24, 15, 29, 59, tzinfo=IST).timestamp()) == THURSDAY


def test_previous_trading_day_and_the_count_skip_the_holiday() -> None:
    assert previous_trading_day(MONDAY) == THURSDAY
    assert trading_days_between(THURSDAY, MONDAY) == 1
    assert trading_days_between(MONDAY, THURSDAY) == -1


def test_the_replay_cycle_steps_one_recorded_session_per_trading_day() -> None:
    replay = NiftyReplay()
    days = len(replay.days)
    assert replay.recorded_index(MONDAY) == (replay.recorded_index(THURSDAY) + 1) % days


def test_default_start_on_a_holiday_is_the_next_session() -> None:
    assert default_start_epoch(datetime(2026, 12, 25, 8, 0, tzinfo=IST)) == session_open_epoch(MONDAY)
    assert default_start_epoch(datetime(2026, 11, 24, 12, 0, tzinfo=IST)) == session_open_epoch(
        date(2026, 11, 25)
    )


def test_session_roll_jumps_over_the_holiday_and_the_weekend() -> None:
    thursday_close = datetime(2026, 12, 24, 15, 30, 5, tzinfo=IST).timestamp()
    clock = SimClock(start_epoch=thursday_close, speed=1.0, monotonic=lambda: 0.0)
    assert session_roll(clock) == session_open_epoch(MONDAY)


def test_day_candles_have_no_holiday() -> None:
    market = market_build(7, session_open_epoch(MONDAY))
    opens = session_open_epoch(MONDAY)
    days = market.candles(256265, "day", opens - 7 * 86_400, opens + 3600)
    stamps = [datetime.fromtimestamp(c[0], IST).date() for c in days]
    assert stamps == [date(2026, 12, d) for d in (21, 22, 23, 24, 28)]
    assert CHRISTMAS not in stamps
