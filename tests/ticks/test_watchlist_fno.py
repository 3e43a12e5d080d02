"""`manage.py watchlist_fno` on a slice of the real dump (tests/ticks/fleet_slice.py): 4 stocks
(DALBHARAT, IDEA, INFY, YESBANK) and 3 indices (BANKNIFTY, NIFTY, SENSEX)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from tests.ticks.factories import BrokerAccountFactory, WatchSpecFactory
from tests.ticks.fleet_slice import FLEET_SLICE, MARKET_CLOCK_BEFORE_FIRST_EXPIRY
from ticks.models import WatchSpec

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_strike_margin(settings: Settings) -> None:
    """The reports below count ATM ± N exactly (test_capacity_selectors covers the margin)."""
    settings.FEED_STRIKE_MARGIN = 0


@pytest.fixture(autouse=True)
def fleet(settings: Settings) -> None:
    settings.MARKET_CLOCK = MARKET_CLOCK_BEFORE_FIRST_EXPIRY
    call_command("instruments_load", "--file", str(FLEET_SLICE), stdout=StringIO())
    BrokerAccountFactory(max_connections=1, tokens_per_connection=100)


def watchlist(*args: str) -> str:
    out = StringIO()
    call_command("watchlist_fno", *args, stdout=out)
    return out.getvalue()


def specs() -> list[tuple[str, int, int, bool]]:
    rows = WatchSpec.objects.values_list("underlying", "strikes_around_atm", "expiry_count", "enabled")
    return list(rows.order_by("underlying"))


def test_stocks_are_created_disabled_and_the_report_says_what_enabling_them_would_take() -> None:
    out = watchlist("--stocks", "--strikes", "10", "--expiries", "2")

    assert specs() == [
        ("DALBHARAT", 10, 2, False),
        ("IDEA", 10, 2, False),
        ("INFY", 10, 2, False),
        ("YESBANK", 10, 2, False),
    ]
    # DALBHARAT 42 + 1, IDEA 20 + 1 + 19 + 2, INFY 42 + 1 + 41 + 2, YESBANK 23 + 1 + 19 + 2 (no index
    # setting for stocks); 100 - 4 reserved holds DALBHARAT and IDEA, INFY does not fit whole.
    assert out.splitlines() == [
        "4 underlyings: created 4, updated 0, unchanged 0",
        "Enabled now: this list needs 0 tokens = 0 accounts at 1 x 100; "
        "you have 1: every underlying fits (100 tokens of capacity)",
        "With these 4 enabled: this list needs 216 tokens (+4 held for companion copies) = 3 accounts at "
        "1 x 100; you have 1: these underlyings will not be streamed: INFY, YESBANK",
    ]


def test_a_second_run_changes_nothing() -> None:
    watchlist("--stocks", "--strikes", "10")

    out = watchlist("--stocks", "--strikes", "10")

    assert out.startswith("4 underlyings: created 0, updated 0, unchanged 4\n")
    assert WatchSpec.objects.count() == 4


def test_existing_specs_keep_what_the_run_does_not_set_and_enable_sets_every_listed_one() -> None:
    WatchSpecFactory(underlying="NIFTY", strikes_around_atm=20, expiry_count=3, enabled=True)

    out = watchlist("--indices")

    assert out.startswith("3 underlyings: created 2, updated 0, unchanged 1\n")
    assert specs() == [("BANKNIFTY", 10, 2, False), ("NIFTY", 20, 3, True), ("SENSEX", 10, 2, False)]

    out = watchlist("--indices", "--enable", "--strikes", "5")

    assert out.startswith("3 underlyings: created 0, updated 3, unchanged 0\n")
    assert "With these" not in out
    assert specs() == [("BANKNIFTY", 5, 2, True), ("NIFTY", 5, 3, True), ("SENSEX", 5, 2, True)]

    watchlist("--indices", "--disabled")

    assert not WatchSpec.objects.filter(enabled=True).exists()


def test_without_a_kind_both_stocks_and_indices_are_listed() -> None:
    assert watchlist().startswith("7 underlyings: created 7,")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--strikes", "0"], "--strikes must be between 1 and 200, got 0."),
        (["--expiries", "13"], "--expiries must be between 1 and 12, got 13."),
        (["--enable", "--disabled"], "not allowed with argument"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], error: str) -> None:
    with pytest.raises(CommandError, match=error):
        watchlist(*args)
    assert not WatchSpec.objects.exists()
