"""Backfill planning on the exchange calendar: weekends and holidays are never asked for."""

from datetime import date, datetime, time

import pytest

from ticks.bars.backfill import backfill_chunks
from ticks.exchange_calendar import TradingCalendar, market_calendar
from ticks.market_time import IST

CHRISTMAS = date(2026, 12, 25)  # a Friday, an XBOM holiday
WEEK = [date(2026, 12, d) for d in (23, 24, 28, 29)]  # the sessions of Wed 23 .. Tue 29
LATER = datetime(2026, 12, 30, 18, 0, tzinfo=IST)


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return market_calendar()


def _range(first: date, last: date) -> tuple[datetime, datetime]:
    return datetime.combine(first, time(0), tzinfo=IST), datetime.combine(last, time(23, 59, 59), tzinfo=IST)


def test_a_holiday_and_the_weekend_after_it_are_skipped_without_splitting_the_request(
    calendar: TradingCalendar,
) -> None:
    start, end = _range(WEEK[0], WEEK[-1])
    chunks = backfill_chunks(start, end, LATER, "minute", set(), chunk_days=60, calendar=calendar)
    assert [c.days for c in chunks] == [tuple(WEEK)]
    assert chunks[0].complete_days == tuple(WEEK)
    assert (chunks[0].window.start, chunks[0].window.end) == (start, end)


def test_one_day_chunks_never_ask_for_the_holiday(calendar: TradingCalendar) -> None:
    start, end = _range(WEEK[0], WEEK[-1])
    chunks = backfill_chunks(start, end, LATER, "minute", set(), chunk_days=1, calendar=calendar)
    assert [c.days for c in chunks] == [(day,) for day in WEEK]


def test_a_range_of_only_the_holiday_asks_for_nothing(calendar: TradingCalendar) -> None:
    start, end = _range(CHRISTMAS, date(2026, 12, 27))
    assert backfill_chunks(start, end, LATER, "minute", set(), chunk_days=60, calendar=calendar) == []


def test_a_done_session_splits_the_request_where_the_holiday_does_not(calendar: TradingCalendar) -> None:
    start, end = _range(WEEK[0], WEEK[-1])
    chunks = backfill_chunks(start, end, LATER, "minute", {WEEK[0]}, chunk_days=60, calendar=calendar)
    assert [c.days for c in chunks] == [tuple(WEEK[1:])]
    chunks = backfill_chunks(start, end, LATER, "minute", {WEEK[1]}, chunk_days=60, calendar=calendar)
    assert [c.days for c in chunks] == [(WEEK[0],), tuple(WEEK[2:])]


def test_the_calendar_passed_in_decides() -> None:
    wednesday = date(2026, 12, 23)
    closed_on_wednesday = TradingCalendar(frozenset({wednesday}), known_until=date(2026, 12, 31))
    start, end = _range(date(2026, 12, 22), date(2026, 12, 25))
    chunks = backfill_chunks(start, end, LATER, "minute", set(), chunk_days=60, calendar=closed_on_wednesday)
    assert [c.days for c in chunks] == [(date(2026, 12, 22), date(2026, 12, 24), CHRISTMAS)]
