import os
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.ticks.factories import OptionFactory, UserFactory
from ticks.models import ClientApiKey

pytestmark = pytest.mark.django_db


def test_anonymous_requests_get_401_with_the_scheme() -> None:
    response = APIClient().get("/api/v1/instruments")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


def test_a_wrong_or_revoked_key_is_refused() -> None:
    api_key, key = ClientApiKey.objects.create_key(name="old", user=UserFactory())
    api_key.revoked = True
    api_key.save()

    for header in ("Api-Key nope.nope", f"Api-Key {key}"):
        assert APIClient().get("/api/v1/instruments", HTTP_AUTHORIZATION=header).status_code == 401


def test_the_x_api_key_header_and_a_browser_session_both_work() -> None:
    _, key = ClientApiKey.objects.create_key(name="algo", user=UserFactory())
    assert APIClient().get("/api/v1/instruments", HTTP_X_API_KEY=key).status_code == 200

    browser = APIClient()
    browser.force_login(UserFactory())
    assert browser.get("/api/v1/instruments").status_code == 200


def test_instruments_filter_and_paginate(key_client: APIClient, django_assert_num_queries) -> None:
    for strike in range(24000, 26000, 50):
        OptionFactory(strike=Decimal(strike), expiry=date(2026, 12, 1))
    OptionFactory(name="BANKNIFTY", strike=Decimal(25000))

    with django_assert_num_queries(3):  # key with its user, count, page
        response = key_client.get(
            "/api/v1/instruments",
            {"name": "NIFTY", "strike_min": 24500, "strike_max": 25000, "limit": 5, "expiry": "2026-12-01"},
        )

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 11
    assert len(body["results"]) == 5
    assert "offset=5" in body["next"]
    assert set(body["results"][0]) >= {"instrument_token", "tradingsymbol", "lot_size", "tick_size", "expiry"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"expiry": "tomorrow"}, "expiry"),
        ({"strike_min": "abc"}, "strike_min"),
        ({"instrument_type": "XX"}, "instrument_type"),
        ({"strike_min": 26000, "strike_max": 25000}, "strike_max"),
    ],
)
def test_bad_filters_get_400_naming_the_field(key_client: APIClient, params: dict, field: str) -> None:
    response = key_client.get("/api/v1/instruments", params)

    assert response.status_code == 400
    assert field in response.json()


def test_chain_expiries(key_client: APIClient) -> None:
    OptionFactory(expiry=date(2026, 12, 29))
    OptionFactory(expiry=date(2026, 12, 1))

    response = key_client.get("/api/v1/chains/NIFTY/expiries")

    assert response.json() == {"underlying": "NIFTY", "expiries": ["2026-12-01", "2026-12-29"]}


def test_chain_expiries_of_an_unknown_underlying_is_404(key_client: APIClient) -> None:
    response = key_client.get("/api/v1/chains/NOPE/expiries")

    assert response.status_code == 404
    assert "underlying" in response.json()


def test_the_openapi_schema_and_docs_are_served(key_client: APIClient) -> None:
    schema = key_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/instruments" in schema.json()["paths"]
    assert key_client.get("/api/docs/").status_code == 200


def test_the_openapi_schema_validates_without_warnings() -> None:
    """Two components of one name (every view's inner serializer is "Output") would make clients wrong."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)
