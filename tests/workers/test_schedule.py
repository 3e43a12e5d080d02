"""The trading day's steps on the market clock (pure: the calendar and ``now`` are given)."""

from datetime import date, datetime

import pytest

from ticks.exchange_calendar import TradingCalendar
from ticks.market_time import IST
from workers.schedule import day_steps_due

CALENDAR = TradingCalendar(holidays=frozenset({date(2026, 12, 25)}), known_until=date(2026, 12, 31))


def _due(at: str) -> list[str]:
    day, steps = day_steps_due(datetime.fromisoformat(at), CALENDAR)
    assert day == datetime.fromisoformat(at).astimezone(IST).date()
    return [step.name for step in steps]


@pytest.mark.parametrize(
    ("at", "names"),
    [
        ("2026-12-08T05:59:59+05:30", []),
        ("2026-12-08T06:00:00+05:30", ["token_expiry"]),
        ("2026-12-08T08:30:00+05:30", ["token_expiry", "instruments_refresh"]),
        ("2026-12-08T09:00:00+05:30", ["token_expiry", "instruments_refresh", "preopen_plan"]),
        ("2026-12-08T09:15:00+05:30", ["token_expiry", "instruments_refresh", "preopen_plan", "live"]),
        ("2026-12-08T15:29:59+05:30", ["token_expiry", "instruments_refresh", "preopen_plan", "live"]),
        (
            "2026-12-08T15:30:01+05:30",
            ["token_expiry", "instruments_refresh", "preopen_plan", "live", "expiry_roll"],
        ),
    ],
)
def test_a_session_day_s_steps_come_due_in_order(at: str, names: list[str]) -> None:
    assert _due(at) == names


@pytest.mark.parametrize(
    "at",
    [
        "2026-12-25T12:00:00+05:30",  # Christmas, an exchange holiday (a Friday)
        "2026-12-26T12:00:00+05:30",  # Saturday
        "2026-12-27T23:59:59+05:30",  # Sunday
    ],
)
def test_a_day_without_a_session_only_rolls_the_tokens(at: str) -> None:
    assert _due(at) == ["token_expiry"]


def test_the_market_date_is_ist_not_utc() -> None:
    # 2026-12-07 19:00 UTC is 00:30 IST on Tuesday the 8th: nothing is due yet on the 8th.
    assert day_steps_due(datetime.fromisoformat("2026-12-07T19:00:00+00:00"), CALENDAR) == (date(2026, 12, 8), [])
