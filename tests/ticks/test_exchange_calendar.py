"""The exchange calendar: XBOM's 2026 holidays, the extra holidays file, and the days past what is known."""

import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import ticks.exchange_calendar as exchange_calendar
from ticks.exchange_calendar import (
    DEFAULT_HOLIDAYS_FILE,
    HOLIDAYS_FILE_ENV,
    HolidayFileError,
    TradingCalendar,
    known_until,
    load_calendar,
    market_calendar,
    read_extra_holidays,
)
from ticks.market_time import IST

# The ref's list (exchange-calendars 4.13.2, XBOM): the weekday holidays of 2026.
HOLIDAYS_2026 = {
    date.fromisoformat(f"2026-{day}")
    for day in [
        "01-15",
        "01-26",
        "03-03",
        "03-26",
        "03-31",
        "04-03",
        "04-14",
        "05-01",
        "05-28",
        "06-26",
        "09-14",
        "10-02",
        "10-20",
        "11-10",
        "11-24",
        "12-25",
    ]
}
HEADER = "# test holidays\ndate,name\n"


@pytest.fixture(scope="module")
def xbom() -> TradingCalendar:
    return load_calendar(None)


@pytest.fixture
def warned(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """A fresh "already warned" set: the warning is once per process per year."""
    years: set[int] = set()
    monkeypatch.setattr(exchange_calendar, "_warned_years", years)
    return years


def beyond_known_count() -> float:
    return REGISTRY.get_sample_value("market_calendar_beyond_known_total") or 0.0


def holidays_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "holidays.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_xbom_2026_holidays_and_session_count(xbom: TradingCalendar) -> None:
    assert {d for d in xbom.holidays if d.year == 2026} == HOLIDAYS_2026
    assert xbom.sessions_between(date(2026, 1, 1), date(2027, 1, 1)) == 245
    assert xbom.known_until == date(2026, 12, 31)


def test_holidays_and_weekends_are_closed(xbom: TradingCalendar) -> None:
    assert not xbom.is_session(date(2026, 12, 25))  # Christmas, a Friday
    assert xbom.is_session(date(2026, 12, 24))
    assert not xbom.is_session(date(2026, 12, 26)) and not xbom.is_session(date(2026, 12, 27))
    assert xbom.is_session(date(2026, 12, 31)) and xbom.is_known(date(2026, 12, 31))


def test_special_saturday_sessions_are_not_sessions(xbom: TradingCalendar) -> None:
    assert not xbom.is_session(date(2025, 2, 1))  # Budget day: XBOM lists a Saturday session


def test_next_and_previous_across_a_holiday_and_a_weekend(xbom: TradingCalendar) -> None:
    assert xbom.next_session(date(2026, 12, 24)) == date(2026, 12, 24)
    assert xbom.next_session(date(2026, 12, 25)) == date(2026, 12, 28)
    assert xbom.previous_session(date(2026, 12, 28)) == date(2026, 12, 24)
    assert xbom.previous_session(date(2026, 12, 24)) == date(2026, 12, 23)
    # Republic Day 2026 is a Monday: the weekend before joins it.
    assert xbom.next_session(date(2026, 1, 24)) == date(2026, 1, 27)
    assert xbom.previous_session(date(2026, 1, 27)) == date(2026, 1, 23)


def test_sessions_between_is_signed_and_skips_holidays(xbom: TradingCalendar) -> None:
    assert xbom.sessions_between(date(2026, 12, 24), date(2026, 12, 29)) == 2  # the 24th and the 28th
    assert xbom.sessions_between(date(2026, 12, 29), date(2026, 12, 24)) == -2
    assert xbom.sessions_between(date(2026, 12, 24), date(2026, 12, 24)) == 0


@pytest.mark.parametrize(
    ("clock", "on_a_session"),
    [(time(9, 14, 59), False), (time(9, 15), True), (time(15, 29, 59), True), (time(15, 30), False)],
)
def test_session_open_at_the_edges(xbom: TradingCalendar, clock: time, on_a_session: bool) -> None:
    assert xbom.session_open(datetime.combine(date(2026, 12, 24), clock, tzinfo=IST)) is on_a_session
    assert xbom.session_open(datetime.combine(date(2026, 12, 25), clock, tzinfo=IST)) is False


def test_session_open_reads_the_ist_date_of_any_aware_moment(xbom: TradingCalendar) -> None:
    assert xbom.session_open(datetime(2026, 12, 24, 4, 30, tzinfo=UTC))  # 10:00 IST
    assert not xbom.session_open(datetime(2026, 12, 25, 4, 30, tzinfo=UTC))


def test_past_the_known_year_weekdays_are_sessions_with_one_warning_a_year(
    xbom: TradingCalendar, warned: set[int], caplog: pytest.LogCaptureFixture
) -> None:
    before = beyond_known_count()
    with caplog.at_level(logging.WARNING, logger="ticks.exchange_calendar"):
        assert xbom.is_session(date(2027, 1, 1)) and xbom.is_session(date(2027, 1, 4))
        assert not xbom.is_known(date(2027, 1, 1))
        assert xbom.session_open(datetime(2027, 1, 4, 10, 0, tzinfo=IST))
        assert not xbom.is_session(date(2027, 1, 2))  # a Saturday is certain: not counted
    assert beyond_known_count() - before == 3
    messages = [r.getMessage() for r in caplog.records]
    assert (
        len(messages) == 1 and "no holiday list for 2027" in messages[0] and "# covers: 2027" in messages[0]
    )
    assert warned == {2027}


def test_stepping_into_the_unknown_year_counts_but_staying_in_the_known_one_does_not(
    xbom: TradingCalendar, warned: set[int]
) -> None:
    before = beyond_known_count()
    assert xbom.previous_session(date(2027, 1, 1)) == date(2026, 12, 31)
    assert xbom.sessions_between(date(2026, 12, 1), date(2027, 1, 1)) == 22
    assert beyond_known_count() == before
    assert xbom.next_session(date(2027, 1, 2)) == date(2027, 1, 4)
    assert xbom.sessions_between(date(2026, 12, 31), date(2027, 1, 5)) == 3
    assert beyond_known_count() - before == 2
    assert warned == {2027}


def test_the_extra_file_adds_a_holiday_past_the_library(tmp_path: Path, warned: set[int]) -> None:
    calendar = load_calendar(holidays_file(tmp_path, "2027-01-26,Republic Day\n"))
    assert not calendar.is_session(date(2027, 1, 26))
    assert calendar.next_session(date(2027, 1, 26)) == date(2027, 1, 27)
    assert calendar.sessions_between(date(2027, 1, 25), date(2027, 1, 28)) == 2
    assert calendar.known_until == date(2026, 12, 31)  # no "# covers:" line: 2027 is still a guess
    assert not calendar.is_session(date(2026, 12, 25))


def test_a_covered_year_becomes_known(tmp_path: Path, warned: set[int]) -> None:
    before = beyond_known_count()
    calendar = load_calendar(holidays_file(tmp_path, "# covers: 2027\n2027-01-26,Republic Day\n"))
    assert calendar.known_until == date(2027, 12, 31)
    assert calendar.is_session(date(2027, 1, 4)) and calendar.is_known(date(2027, 1, 4))
    assert beyond_known_count() == before and warned == set()


def test_known_until_extends_only_through_consecutive_covered_years() -> None:
    end = date(2026, 12, 31)
    assert known_until(end, frozenset()) == end
    assert known_until(end, frozenset({2027, 2028})) == date(2028, 12, 31)
    assert known_until(end, frozenset({2028})) == end
    assert known_until(end, frozenset({2025})) == end


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("2027-01-26,Republic Day\n2027-13-01,Nothing\n", 4, "not a YYYY-MM-DD date"),
        ("2027-01-26\n", 3, "expected 'YYYY-MM-DD,name'"),
        ("2027-01-26,\n", 3, "expected 'YYYY-MM-DD,name'"),
        ("# covers: 27\n", 3, "four-digit years"),
    ],
)
def test_a_malformed_line_names_the_file_and_the_line(
    tmp_path: Path, body: str, line: int, fragment: str
) -> None:
    path = holidays_file(tmp_path, body)
    with pytest.raises(HolidayFileError) as caught:
        read_extra_holidays(path)
    assert str(caught.value).startswith(f"{path}:{line}: ") and fragment in str(caught.value)
    assert (caught.value.path, caught.value.line) == (path, line)


def test_the_header_is_required(tmp_path: Path) -> None:
    path = tmp_path / "holidays.csv"
    path.write_text("2027-01-26,Republic Day\n", encoding="utf-8")
    with pytest.raises(HolidayFileError, match=rf"^{path}:1: expected the header"):
        read_extra_holidays(path)


def test_comments_blank_lines_and_names_with_commas(tmp_path: Path) -> None:
    path = holidays_file(tmp_path, "\n# a note\n# covers: 2027, 2028\n2027-03-22, Holi, (tentative)\n")
    extra = read_extra_holidays(path)
    assert extra.holidays == {date(2027, 3, 22)} and extra.covers == {2027, 2028}


def test_the_shipped_file_parses() -> None:
    read_extra_holidays(DEFAULT_HOLIDAYS_FILE)


def test_market_calendar_is_loaded_once_from_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOLIDAYS_FILE_ENV, str(holidays_file(tmp_path, "2027-01-26,Republic Day\n")))
    market_calendar.cache_clear()
    try:
        calendar = market_calendar()
        assert market_calendar() is calendar
        assert date(2027, 1, 26) in calendar.holidays and date(2026, 12, 25) in calendar.holidays
    finally:
        market_calendar.cache_clear()
    monkeypatch.delenv(HOLIDAYS_FILE_ENV)
    assert date(2027, 1, 26) not in market_calendar().holidays


def test_beyond_known_lookups_never_raise_over_a_whole_year(xbom: TradingCalendar, warned: set[int]) -> None:
    days = [date(2027, 1, 1) + timedelta(days=k) for k in range(365)]
    assert sum(xbom.is_session(d) for d in days) == 261  # every weekday of 2027
