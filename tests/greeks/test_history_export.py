"""GET /api/v1/greeks/history: one option's stored IV and Greeks over a range, JSON or CSV."""

import csv
import io
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from greeks.models import GreeksSnapshot
from greeks.selectors import HISTORY_FIELDS
from tests.greeks.snapshots import greeks_snapshot
from tests.ticks.factories import FutureFactory, OptionFactory
from ticks.market_time import IST
from ticks.models import Instrument

pytestmark = pytest.mark.django_db

URL = "/api/v1/greeks/history"
EXPIRY = date(2026, 12, 8)
DAY = date(2026, 12, 1)


def _ist(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=IST)


@pytest.fixture
def call() -> Instrument:
    """The 24800 CE with 150 stored minutes on DAY (10:00-12:29), among its neighbours' snapshots."""
    listed = OptionFactory(expiry=EXPIRY, strike=Decimal(24_800))
    put = OptionFactory(expiry=EXPIRY, strike=Decimal(24_800), instrument_type="PE")
    other = OptionFactory(expiry=EXPIRY, strike=Decimal(24_850))
    later = OptionFactory(expiry=date(2026, 12, 29), strike=Decimal(24_800))
    minutes = [_ist(DAY, 10, 0) + timedelta(minutes=k) for k in range(150)]
    rows = [greeks_snapshot(listed, when, 0.13 + k / 10_000) for k, when in enumerate(minutes)]
    rows[3] = greeks_snapshot(listed, minutes[3], None)  # a minute without a price
    rows += [greeks_snapshot(leg, when, 0.2) for leg in (put, other, later) for when in minutes[:5]]
    GreeksSnapshot.objects.bulk_create(rows)
    return listed


def _range(option: Instrument | str, start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    key = option if isinstance(option, str) else option.instrument_token
    return {"instrument": key, "from": start.isoformat(), "to": end.isoformat(), **extra}


def test_anonymous_gets_401(call: Instrument) -> None:
    response = APIClient().get(URL, _range(call, _ist(DAY, 0, 0), _ist(DAY, 23, 0)))

    assert response.status_code == 401 and response["WWW-Authenticate"] == "Api-Key"


def test_json_is_that_options_minutes_in_range_paginated(
    key_client: APIClient, call: Instrument, django_assert_num_queries: Any
) -> None:
    params = _range(f"NFO:{call.tradingsymbol}", _ist(DAY, 10, 2), _ist(DAY, 11, 0), limit=10)

    with django_assert_num_queries(4):  # key with its user, the instrument, count, the page
        body = key_client.get(URL, params).json()

    assert (body["instrument_token"], body["count"]) == (call.instrument_token, 59)
    first, second = body["results"][:2]
    assert [point["taken_at"] for point in body["results"][:2]] == [
        "2026-12-01T10:02:00+05:30",
        "2026-12-01T10:03:00+05:30",
    ]
    assert first["iv"] == pytest.approx(0.1302) and first["iv_mid"] == pytest.approx(0.1312)
    assert second["iv"] is None and second["status"] == "no_price"
    assert set(first) == set(HISTORY_FIELDS)
    assert "offset=10" in body["next"]


def test_a_wider_range_costs_the_same_queries(
    key_client: APIClient, call: Instrument, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(4):
        body = key_client.get(
            URL, _range(call, _ist(DAY, 0, 0) - timedelta(days=30), _ist(DAY, 0, 0) + timedelta(days=29))
        ).json()

    assert body["count"] == 150


def test_csv_is_the_whole_range_with_a_header(
    key_client: APIClient, call: Instrument, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(3):  # key with its user, the instrument, the rows
        response = key_client.get(
            URL, _range(call, _ist(DAY, 0, 0), _ist(DAY, 23, 59), format="csv", limit=5)
        )
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"greeks-{call.instrument_token}.csv" in response["Content-Disposition"]
    assert tuple(rows[0]) == HISTORY_FIELDS
    assert len(rows) == 151  # not paginated
    header = rows[0]
    first, gap = dict(zip(header, rows[1], strict=True)), dict(zip(header, rows[4], strict=True))
    assert first["taken_at"] == "2026-12-01T10:00:00+05:30"
    assert float(first["iv"]) == pytest.approx(0.13) and first["status"] == "ok"
    assert gap["iv"] == "" and gap["status"] == "no_price"  # a null is an empty cell
    assert rows[-1][0] == "2026-12-01T12:29:00+05:30"


def test_accept_text_csv_asks_for_csv(key_client: APIClient, call: Instrument) -> None:
    response = key_client.get(URL, _range(call, _ist(DAY, 0, 0), _ist(DAY, 23, 59)), HTTP_ACCEPT="text/csv")

    assert response["Content-Type"].startswith("text/csv")


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"from": "noon"}, "from", 400),
        ({"to": "2026-12-32"}, "to", 400),
        ({"to": None}, "to", 400),
        ({"from": "2026-12-01T12:00:00+05:30", "to": "2026-12-01T11:00:00+05:30"}, "from", 400),
        ({"from": "2026-10-01T00:00:00+05:30", "to": "2026-11-30T00:00:01+05:30"}, "to", 400),  # > 60 days
        ({"instrument": "NIFTY 50"}, "instrument", 400),
        ({"instrument": "NFO:NIFTY26DEC99999CE"}, "instrument", 404),
    ],
)
def test_bad_input_names_the_field(
    key_client: APIClient, call: Instrument, change: dict[str, Any], field: str, status: int
) -> None:
    params = {
        k: v
        for k, v in {**_range(call, _ist(DAY, 0, 0), _ist(DAY, 23, 0)), **change}.items()
        if v is not None
    }
    for extra in ({}, {"format": "csv"}):
        response = key_client.get(URL, {**params, **extra})

        assert response.status_code == status
        assert response["Content-Type"] == "application/json"
        assert field in response.json()


def test_a_future_has_no_greeks_history(key_client: APIClient) -> None:
    future = FutureFactory(expiry=EXPIRY)

    response = key_client.get(URL, _range(future, _ist(DAY, 0, 0), _ist(DAY, 23, 0)))

    assert response.status_code == 400
    assert "not an option" in response.json()["instrument"][0]


def test_sixty_days_is_accepted(key_client: APIClient, call: Instrument) -> None:
    end = _ist(DAY, 23, 0)
    assert key_client.get(URL, _range(call, end - timedelta(days=60), end)).status_code == 200


def test_the_openapi_schema_lists_the_export(key_client: APIClient) -> None:
    schema = key_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    responses = schema["paths"]["/api/v1/greeks/history"]["get"]["responses"]
    assert set(responses["200"]["content"]) == {"application/json", "text/csv"}
