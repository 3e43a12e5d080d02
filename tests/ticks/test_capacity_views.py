"""The capacity report where operators and clients read it: the WatchSpec admin and GET /api/v1/feeds/capacity."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from tests.ticks.factories import BrokerAccountFactory, UserFactory, WatchSpecFactory
from tests.ticks.fleet_slice import MARKET_CLOCK_BEFORE_FIRST_EXPIRY, fleet_slice_load
from ticks.models import WatchSpec

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_strike_margin(settings) -> None:
    """The counts below are of ATM ± N exactly; test_the_strike_margin_is_counted covers the margin."""
    settings.FEED_STRIKE_MARGIN = 0


@pytest.fixture
def fleet(settings: Settings) -> WatchSpec:
    """INFY (86 tokens) enabled, NIFTY (48) disabled, one healthy account of 1 x 100; returns NIFTY."""
    settings.MARKET_CLOCK = MARKET_CLOCK_BEFORE_FIRST_EXPIRY
    fleet_slice_load()
    WatchSpecFactory(underlying="INFY", strikes_around_atm=10, expiry_count=2, enabled=True)
    BrokerAccountFactory(max_connections=1, tokens_per_connection=100)
    return WatchSpecFactory(underlying="NIFTY", strikes_around_atm=5, expiry_count=2, enabled=False)


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_the_watch_spec_changelist_shows_the_report_of_the_enabled_specs(
    fleet: WatchSpec, admin_client_: Client
) -> None:
    page = admin_client_.get("/admin/ticks/watchspec/").content.decode()

    assert 'id="capacity-report"' in page
    assert (
        "Enabled specs: this list needs 86 tokens (+4 held for companion copies) = 1 account at 1 x 100; "
        "you have 1: every underlying fits (100 tokens of capacity)"
    ) in page


def test_the_check_action_reports_with_the_selected_specs_enabled_and_enables_nothing(
    fleet: WatchSpec, admin_client_: Client
) -> None:
    form = {"action": "check_capacity", "_selected_action": [fleet.pk]}

    response = admin_client_.post("/admin/ticks/watchspec/", form, follow=True)

    page = response.content.decode()
    assert (
        "With the 1 selected enabled, this list needs 134 tokens (+4 held for companion copies) = "
        "2 accounts at 1 x 100; you have 1: these underlyings will not be streamed: INFY"
    ) in page
    assert not WatchSpec.objects.get(pk=fleet.pk).enabled


def test_the_capacity_api_returns_the_report(fleet: WatchSpec, key_client: APIClient) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = key_client.get("/api/v1/feeds/capacity")

    assert response.status_code == 200
    assert response.json() == {
        "needed": 86,
        "reserve": 4,
        "capacity": 100,
        "accounts": 1,
        "accounts_needed": 1,
        "per_account": 100,
        "connections": 1,
        "per_connection": 100,
        "streamed": ["INFY"],
        "not_streamed": [],
        "message": "this list needs 86 tokens (+4 held for companion copies) = 1 account at 1 x 100; "
        "you have 1: every underlying fits (100 tokens of capacity)",
    }
    # The API key (its user joined), then specs, chains, futures and accounts (INFY has no index setting).
    assert len(queries) == 1 + 4


def test_the_capacity_api_needs_a_key() -> None:
    assert APIClient().get("/api/v1/feeds/capacity").status_code in (401, 403)
