"""REST input past what the database, Kite or Python's dates can hold: a 400 naming the field, never a
500 (tickerproject.bounds, tickerproject.pagination). Each case was a 500 on SQLite, PostgreSQL or both."""

from datetime import date, datetime

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from tests.orders.factories import OrderFactory
from tests.ticks.factories import OptionFactory
from tickerproject.bounds import BIGINT_MAX, BoundedDateField
from ticks.market_time import IST
from ticks.models import Bar, ClientApiKey

pytestmark = pytest.mark.django_db

TOKEN = 256265
RANGE = "from=2026-12-01T09:15&to=2026-12-01T10:00"
BARS = f"/api/v1/bars?instrument={TOKEN}&interval=minute&{RANGE}"


@pytest.fixture
def stored() -> None:
    """An instrument with one stored minute: a page of it reaches SQL's LIMIT and OFFSET."""
    OptionFactory(instrument_token=TOKEN)
    Bar.objects.create(
        instrument_token=TOKEN,
        interval="minute",
        start=datetime(2026, 12, 1, 9, 15, tzinfo=IST),
        open=1,
        high=1,
        low=1,
        close=1,
    )


def refused(client: APIClient, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 400, (response.status_code, url)
    return response.json()


@pytest.mark.parametrize(
    "instrument", [str(2**70), str(2**63), str(2**32), "0", "\u00b2", "4294967296 "]
)  # "²" passed str.isdigit() and then failed int()
@pytest.mark.parametrize("path", ["/api/v1/bars?interval=minute&", "/api/v1/greeks/history?"])
def test_a_token_kite_cannot_have_is_a_400_naming_instrument(
    key_client: APIClient, path: str, instrument: str
) -> None:
    body = refused(key_client, f"{path}instrument={instrument}&{RANGE}")

    assert body == {"instrument": ["An instrument token is 1 to 4294967295."]}


def test_the_largest_kite_token_is_looked_up(key_client: APIClient) -> None:
    response = key_client.get(f"/api/v1/bars?instrument={2**32 - 1}&interval=minute&{RANGE}")

    assert response.status_code == 404 and "instrument" in response.json()


@pytest.mark.parametrize(
    ("interval", "start", "end"),
    [
        ("minute", "0001-01-01T00:00", "0001-01-02T00:00"),  # IST to UTC went below year 1
        ("day", "0001-01-01T00:00", "0001-01-02T00:00"),
        ("day", "9999-12-30T00:00", "9999-12-31T23:59"),  # the day window's next day
        ("minute", "1969-12-31T23:00", "1970-01-01T01:00"),
        ("minute", "2200-01-01T00:00", "2200-01-01T01:00"),
    ],
)
def test_dates_near_the_ends_of_the_calendar_are_a_400_naming_them(
    key_client: APIClient, stored: None, interval: str, start: str, end: str
) -> None:
    body = refused(key_client, f"/api/v1/bars?instrument={TOKEN}&interval={interval}&from={start}&to={end}")

    assert set(body) <= {"from", "to"} and body
    assert "Must lie in the years 1970 to 2199." in [*body.get("from", []), *body.get("to", [])]


@pytest.mark.parametrize("start", ["1970-01-01T05:30", "2199-12-31T00:00"])
def test_dates_inside_the_bounds_are_served(key_client: APIClient, stored: None, start: str) -> None:
    response = key_client.get(f"/api/v1/bars?instrument={TOKEN}&interval=day&from={start}&to={start}")

    assert response.status_code == 200, response.json()


def test_greeks_history_shares_the_date_bounds(key_client: APIClient, stored: None) -> None:
    body = refused(
        key_client, f"/api/v1/greeks/history?instrument={TOKEN}&from=0001-01-01T00:00&to=0001-01-02T00:00"
    )

    assert body["from"] == ["Must lie in the years 1970 to 2199."]


@pytest.mark.parametrize(
    ("field", "query"),
    [
        ("limit", f"limit={2**63}"),
        ("limit", f"limit={2**70}"),
        ("offset", f"offset={2**63}"),
        ("offset", f"limit=5&offset={2**70}"),
    ],
)
@pytest.mark.parametrize("interval", ["minute", "5minute"])  # a page of SQL, a page of a resampled list
def test_a_limit_or_offset_past_bigint_is_a_400_naming_it(
    key_client: APIClient, stored: None, interval: str, field: str, query: str
) -> None:
    url = f"/api/v1/bars?instrument={TOKEN}&interval={interval}&{RANGE}&{query}"

    assert refused(key_client, url) == {field: [f"Must be at most {BIGINT_MAX}."]}


def test_the_largest_limit_and_offset_are_served(key_client: APIClient, stored: None) -> None:
    page = key_client.get(f"{BARS}&limit={BIGINT_MAX}").json()
    past = key_client.get(f"{BARS}&limit=1&offset={BIGINT_MAX}").json()

    assert (page["count"], len(page["results"])) == (1, 1)
    assert (past["count"], past["results"]) == (1, [])


def test_a_malformed_limit_is_refused_by_name(key_client: APIClient, stored: None) -> None:
    """The schema's bounds, not DRF's silent default page: the first refused page parameter is named."""
    assert refused(key_client, f"{BARS}&limit=-3&offset=x") == {
        "limit": ["An integer from 1 to 9223372036854775807."]
    }


@pytest.fixture
def orders_client() -> APIClient:
    order = OrderFactory()
    _, key = ClientApiKey.objects.create_key(name="algo", user=order.client)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.parametrize(
    ("field", "query", "message"),
    [
        ("limit", f"limit={2**63}", f"Must be at most {BIGINT_MAX}."),
        ("offset", f"offset={2**70}", f"Must be at most {BIGINT_MAX}."),
        ("created_after", "created_after=0001-01-01T00:00", "Must lie in the years 1970 to 2199."),
        ("created_before", "created_before=9999-12-31T00:00", "Must lie in the years 1970 to 2199."),
    ],
)
def test_order_list_bounds(orders_client: APIClient, field: str, query: str, message: str) -> None:
    assert refused(orders_client, f"/api/v1/orders?{query}") == {field: [message]}


def test_order_list_pages_as_before(orders_client: APIClient) -> None:
    response = orders_client.get(f"/api/v1/orders?limit={BIGINT_MAX}&created_after=2000-01-01T00:00")

    assert response.status_code == 200 and response.json()["count"] == 1


@pytest.mark.parametrize("order_id", [2**63, 2**70])
def test_an_order_id_past_bigint_is_not_found(orders_client: APIClient, order_id: int) -> None:
    assert orders_client.get(f"/api/v1/orders/{order_id}").status_code == 404


@pytest.mark.parametrize("text", ["1970-01-01", "2199-12-31"])
def test_a_bounded_date_inside_the_years_is_parsed(text: str) -> None:
    assert BoundedDateField().run_validation(text) == date.fromisoformat(text)


@pytest.mark.parametrize("text", ["0001-01-01", "1969-12-31", "9999-12-31"])
def test_a_bounded_date_outside_the_years_is_refused(text: str) -> None:
    with pytest.raises(serializers.ValidationError) as error:
        BoundedDateField().run_validation(text)

    assert error.value.detail == ["Must lie in the years 1970 to 2199."]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (f"/api/v1/ticks/latest?tokens={2**70}", "tokens"),  # answered 200, an empty list
        (f"/api/v1/ticks/latest?tokens=256265,{2**32}", "tokens"),
        (f"/api/v1/instruments?limit={BIGINT_MAX + 1}", "limit"),
        (f"/api/v1/instruments?offset={BIGINT_MAX + 1}", "offset"),
        (f"/api/v1/feeds/plan?token={2**32}", "token"),
        (f"/api/v1/feeds/plan?limit={BIGINT_MAX + 1}", "limit"),
        ("/api/v1/feeds/plan?account=a%00", "account"),  # PostgreSQL: text cannot contain NUL
        ("/api/v1/chains/%00/expiries", "underlying"),  # PostgreSQL: text cannot contain NUL
        (f"/api/v1/chains/{'N' * 65}/expiries", "underlying"),
    ],
)
def test_ticks_and_feeds_endpoints_refuse_what_they_cannot_hold(
    key_client: APIClient, url: str, field: str
) -> None:
    body = refused(key_client, url)

    assert field in body or body.get("field") == field, body


@pytest.mark.parametrize("underlying", ["M&M", "BAJAJ-AUTO"])  # Kite's names with "&" and "-"
def test_an_underlying_named_with_kites_punctuation_is_looked_up(
    key_client: APIClient, underlying: str
) -> None:
    OptionFactory(name=underlying, tradingsymbol=f"{underlying}26DEC1000CE")

    response = key_client.get(f"/api/v1/chains/{underlying.replace('&', '%26')}/expiries")

    assert response.status_code == 200 and response.json()["underlying"] == underlying


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/chains/NIFTY/2026-12-01?at=0001-01-01T00:00", "at"),  # OverflowError moving to UTC
        ("/api/v1/chains/NIFTY/9999-12-31", "expiry"),
        ("/api/v1/chains/NIFTY/2026-12-01/history?strike=26000&date=9999-12-31", "date"),
        ("/api/v1/chains/NIFTY/2026-12-01/history?strike=26000&date=0001-01-01", "date"),
        ("/api/v1/chains/%00/2026-12-01", "underlying"),
        ("/api/v1/chains/%00/2026-12-01/history?strike=26000", "underlying"),
        (f"/api/v1/greeks/history?instrument={TOKEN}&{RANGE}&limit={BIGINT_MAX + 1}", "limit"),
    ],
)
def test_chain_endpoints_refuse_what_they_cannot_hold(
    key_client: APIClient, stored: None, url: str, field: str
) -> None:
    body = refused(key_client, url)

    assert field in body or body.get("field") == field, body
