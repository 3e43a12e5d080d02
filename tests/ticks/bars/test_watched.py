"""The bars' session arithmetic on the exchange calendar: holidays and weekends are not sessions."""

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from tests.workers.plan_factories import FeedAssignmentFactory, FeedPlanFactory
from ticks.bars.watched import closed_minutes, current_session, watched_underlyings
from ticks.exchange_calendar import TradingCalendar, market_calendar
from ticks.market_time import IST
from workers.models import FeedAssignment

WEDNESDAY, THURSDAY = date(2026, 12, 23), date(2026, 12, 24)
CHRISTMAS = date(2026, 12, 25)  # a Friday, an XBOM holiday
MONDAY = date(2026, 12, 28)


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return market_calendar()


def _at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=IST)


@pytest.mark.parametrize(
    ("now", "session"),
    [
        (_at(CHRISTMAS, time(10, 0)), THURSDAY),  # a holiday's minutes are never closed
        (_at(CHRISTMAS, time(16, 0)), THURSDAY),
        (_at(date(2026, 12, 26), time(12, 0)), THURSDAY),  # the weekend after it
        (_at(MONDAY, time(9, 14, 59)), THURSDAY),  # before Monday's open: back over the weekend and Friday
        (_at(MONDAY, time(9, 15)), MONDAY),
        (_at(THURSDAY, time(9, 14, 59)), WEDNESDAY),
        (_at(THURSDAY, time(15, 45)), THURSDAY),
        (datetime(2026, 12, 24, 22, 0, tzinfo=UTC), THURSDAY),  # 03:30 IST on Christmas: the IST date counts
    ],
)
def test_current_session_skips_the_holiday(calendar: TradingCalendar, now: datetime, session: date) -> None:
    assert current_session(now, calendar) == session


def test_a_day_the_calendar_closes_is_never_a_session() -> None:
    closed_on_wednesday = TradingCalendar(frozenset({WEDNESDAY}), known_until=date(2026, 12, 31))
    assert current_session(_at(THURSDAY, time(9, 0)), closed_on_wednesday) == date(2026, 12, 22)
    assert current_session(_at(WEDNESDAY, time(12, 0)), closed_on_wednesday) == date(2026, 12, 22)


def test_on_a_holiday_the_closed_minutes_are_the_previous_sessions_whole_day(
    calendar: TradingCalendar,
) -> None:
    now = _at(CHRISTMAS, time(11, 0))
    minutes = closed_minutes(current_session(now, calendar), now)
    assert len(minutes) == 375
    assert (minutes[0], minutes[-1]) == (_at(THURSDAY, time(9, 15)), _at(THURSDAY, time(15, 29)))


@pytest.mark.django_db
def test_the_watched_options_are_the_whole_plan_in_force_not_the_rows_its_version_placed() -> None:
    """Plans are stored incrementally: a re-centre places only the strikes it adds."""
    first, second = FeedPlanFactory(), FeedPlanFactory()
    kept, retired, added = (OptionFactory(strike=Decimal(k)) for k in (24800, 24700, 24900))
    account = BrokerAccountFactory()
    for plan, option in ((first, kept), (first, retired), (second, added)):
        FeedAssignmentFactory(plan=plan, account=account, instrument_token=option.instrument_token)
    FeedAssignment.objects.filter(instrument_token=retired.instrument_token).update(retired_in=second)

    (watched,) = watched_underlyings(day=date(2026, 12, 1), underlying="NIFTY")

    assert {option.instrument_token for option in watched.options} == {
        kept.instrument_token,
        added.instrument_token,
    }
