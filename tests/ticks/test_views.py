"""The dashboard page (its live behaviour is tests/browser's)."""

import json
import re
from typing import Any

import pytest
from django.test import Client

from tests.ticks.factories import UserFactory, WatchSpecFactory
from ticks.models import DASHBOARD_COLUMNS, DASHBOARD_DEFAULT_COLUMNS
from ticks.services import dashboard_preferences_save

pytestmark = pytest.mark.django_db


def test_the_dashboard_asks_for_a_login_first() -> None:
    response = Client().get("/")

    assert (response.status_code, response["Location"]) == (302, "/login/?next=/")


def test_nifty_is_the_underlying_selected_first(client: Client) -> None:
    for underlying in ("BANKNIFTY", "FINNIFTY", "NIFTY"):
        WatchSpecFactory(underlying=underlying)
    WatchSpecFactory(underlying="MIDCPNIFTY", enabled=False)
    client.force_login(UserFactory())

    page = client.get("/").content.decode()

    assert re.findall(r"<option>(\w+)</option>", page) == ["NIFTY", "BANKNIFTY", "FINNIFTY"]


def _config(page: str) -> dict[str, Any]:
    """The page's settings for dashboard.js, from its json_script element."""
    match = re.search(r'<script id="dashboard-config" type="application/json">(.*?)</script>', page, re.S)
    assert match, "no dashboard-config on the page"
    return json.loads(match.group(1))


def test_the_page_carries_the_columns_the_defaults_and_the_stale_age(client: Client, settings: Any) -> None:
    settings.DASHBOARD_STALE_PRICE_S = 45
    client.force_login(UserFactory())

    config = _config(client.get("/").content.decode())

    assert config == {
        "columns": list(DASHBOARD_COLUMNS),
        "preferences": {"columns": list(DASHBOARD_DEFAULT_COLUMNS), "strike_range": 10},
        "stale_price_s": 45,
    }


def test_the_page_carries_what_the_user_saved(client: Client) -> None:
    user, other = UserFactory(), UserFactory()
    dashboard_preferences_save(user=user, columns=["last_price", "oi", "gamma"], strike_range=25)
    dashboard_preferences_save(user=other, columns=["iv"], strike_range=5)
    client.force_login(user)

    config = _config(client.get("/").content.decode())

    assert config["preferences"] == {"columns": ["oi", "gamma", "last_price"], "strike_range": 25}
