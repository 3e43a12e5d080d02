"""What the watch specs need, counted from a slice of the real Kite dump (tests/ticks/fleet_slice.py)."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from tests.ticks.factories import BrokerAccountFactory, WatchSpecFactory
from tests.ticks.fleet_slice import BEFORE_FIRST_EXPIRY, MARKET_CLOCK_BEFORE_FIRST_EXPIRY, fleet_slice_load
from ticks.feeds.capacity import UnderlyingNeed
from ticks.models import BrokerAccount, WatchSpec
from ticks.selectors import expiries_of_kind, feed_capacity_report, watch_spec_needs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_strike_margin(settings) -> None:
    """The counts below are of ATM ± N exactly; test_the_strike_margin_is_counted covers the margin."""
    settings.FEED_STRIKE_MARGIN = 0


@pytest.fixture
def fleet_slice() -> None:
    fleet_slice_load()


def spec(underlying: str, strikes: int, expiries: int, kind: str = "any", **fields: object) -> WatchSpec:
    return WatchSpecFactory.build(
        underlying=underlying, strikes_around_atm=strikes, expiry_count=expiries, expiry_kind=kind, **fields
    )


@pytest.mark.usefixtures("fleet_slice")
def test_needs_count_window_options_and_companions_per_expiry_group_in_three_queries() -> None:
    specs = [
        # 08-18 and 08-25, 21 strikes each > 11: 22 options each; index + near future (08-25) each.
        spec("NIFTY", 5, 2),
        # Aug: 40 strikes > 21 -> 42 (of 71 listed); Sep: 21 strikes, the whole chain, 41 legs listed.
        # Companions: near future (Aug) on both, Sep's own future on Sep; INFY has no index setting.
        spec("INFY", 10, 2),
        # Every YESBANK expiry is the last of its month: 23 + 19 + 16 options, 1 + 2 + 2 companions.
        spec("YESBANK", 10, 3, "monthly"),
        spec("IDEA", 10, 2, "weekly"),  # stocks list monthlies only: nothing
        # 08-20 (5 strikes, 9 legs); the index and the near future (08-27); no 08-20 future.
        spec("SENSEX", 10, 4),
        spec("BANKNIFTY", 10, 1),  # its index is not in the table: options + near future
    ]

    with CaptureQueriesContext(connection) as queries:
        needs = watch_spec_needs(specs, today=BEFORE_FIRST_EXPIRY)

    assert needs == [
        UnderlyingNeed("NIFTY", 22 + 2 + 22 + 2, 2),
        UnderlyingNeed("INFY", 42 + 1 + 41 + 2, 2),
        UnderlyingNeed("YESBANK", 23 + 1 + 19 + 2 + 16 + 2, 2),
        UnderlyingNeed("IDEA", 0, 0),
        UnderlyingNeed("SENSEX", 9 + 2, 2),
        UnderlyingNeed("BANKNIFTY", 20 + 1, 1),
    ]
    assert len(queries) == 3


@pytest.mark.usefixtures("fleet_slice")
def test_expired_chains_are_not_counted() -> None:
    needs = watch_spec_needs([spec("NIFTY", 5, 2), spec("DALBHARAT", 20, 2)], today=date(2026, 8, 19))

    # NIFTY keeps 08-25 only; DALBHARAT's one expiry (08-25): 29 strikes <= 41, all 57 legs + its future.
    assert needs == [UnderlyingNeed("NIFTY", 22 + 2, 2), UnderlyingNeed("DALBHARAT", 57 + 1, 1)]


def test_needs_without_any_index_setting_take_two_queries() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert watch_spec_needs([spec("INFY", 10, 2)], today=BEFORE_FIRST_EXPIRY) == [
            UnderlyingNeed("INFY", 0, 0)
        ]
    assert len(queries) == 2


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("any", [date(2026, 8, 4), date(2026, 8, 11), date(2026, 8, 25), date(2026, 9, 29)]),
        ("weekly", [date(2026, 8, 4), date(2026, 8, 11)]),
        ("monthly", [date(2026, 8, 25), date(2026, 9, 29)]),
    ],
)
def test_expiries_of_kind(kind: str, expected: list[date]) -> None:
    expiries = [date(2026, 8, 4), date(2026, 8, 11), date(2026, 8, 25), date(2026, 9, 29)]

    assert expiries_of_kind(expiries, kind) == expected


@pytest.mark.usefixtures("fleet_slice")
def test_feed_capacity_report_uses_enabled_specs_healthy_accounts_and_the_market_date(
    settings: Settings,
) -> None:
    settings.MARKET_CLOCK = MARKET_CLOCK_BEFORE_FIRST_EXPIRY
    WatchSpecFactory(underlying="YESBANK", strikes_around_atm=10, expiry_count=3, enabled=True)  # 63
    WatchSpecFactory(underlying="INFY", strikes_around_atm=10, expiry_count=2, enabled=True)  # 86
    disabled = WatchSpecFactory(underlying="NIFTY", strikes_around_atm=5, expiry_count=2, enabled=False)  # 48
    BrokerAccountFactory(max_connections=1, tokens_per_connection=100)
    BrokerAccountFactory(max_connections=1, tokens_per_connection=100, health=BrokerAccount.Health.FAILING)
    BrokerAccountFactory(max_connections=3, tokens_per_connection=3000, enabled=False)

    with CaptureQueriesContext(connection) as queries:
        report = feed_capacity_report()

    # Priority is the planner's: indices first, then stocks by name. INFY 86 fits 100 - 4 reserved; YESBANK does not.
    assert (report.needed, report.capacity, report.reserve) == (149, 100, 4)
    assert (report.streamed, report.not_streamed, report.accounts_needed) == (("INFY",), ("YESBANK",), 2)
    assert len(queries) == 4  # specs, chains, futures, accounts (no stock has an index setting)

    with CaptureQueriesContext(connection) as queries:
        with_nifty = feed_capacity_report(with_enabled=[disabled.pk])

    assert len(queries) == 5  # and NIFTY's index

    assert with_nifty.needed == 149 + 48
    assert with_nifty.streamed == ("NIFTY",)  # the index first: 48, then INFY's 86 no longer fits
    assert with_nifty.not_streamed == ("INFY", "YESBANK")


@pytest.mark.usefixtures("fleet_slice")
def test_the_strike_margin_is_counted(settings) -> None:
    """workers.desired streams ATM ± (N + FEED_STRIKE_MARGIN): the report counts what is streamed."""
    settings.FEED_STRIKE_MARGIN = 2

    (need,) = watch_spec_needs([spec("NIFTY", 3, 2)], today=BEFORE_FIRST_EXPIRY)

    assert need == UnderlyingNeed("NIFTY", 22 + 2 + 22 + 2, 2)  # as ±5 without a margin
