"""The dashboard page (its live behaviour is tests/browser's)."""

import re

import pytest
from django.test import Client

from tests.ticks.factories import UserFactory, WatchSpecFactory

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
