"""GET /api/v1/bars: auth, pinned query counts, every 400, pagination, CSV, and kitesim's candles."""

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.ticks.bars.kite_oracle import NIFTY_50, KiteOracle, oracle
from tests.ticks.factories import OptionFactory, UserFactory
from ticks.bars.intervals import KITE_MAX_SPAN_DAYS
from ticks.bars.records import BarRecord
from ticks.bars.services import bars_upsert
from ticks.market_time import IST
from ticks.models import ClientApiKey, Instrument

__all__ = ["oracle"]  # the module-scoped kitesim fixture

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 12)
URL = "/api/v1/bars"


def _ist(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=IST)


@pytest.fixture
def option() -> Instrument:
    """An option with a full session of 1-minute bars on DAY (open 100 + k at minute k)."""
    listed = OptionFactory(expiry=date(2026, 3, 26))
    first = _ist(DAY, 9, 15).timestamp()
    bars_upsert(
        records=[
            BarRecord(
                listed.instrument_token, "minute", first + 60 * k, 100 + k, 101 + k, 99 + k, 100.5 + k, 10, k
            )
            for k in range(375)
        ]
    )
    return listed


def _day(option: Instrument, interval: str, **extra: Any) -> dict[str, Any]:
    return {
        "instrument": option.instrument_token,
        "interval": interval,
        "from": _ist(DAY, 0, 0).isoformat(),
        "to": _ist(DAY, 23, 59, 59).isoformat(),
        **extra,
    }


# -- auth --------------------------------------------------------------------------------------------


def test_anonymous_gets_401_with_the_scheme(option: Instrument) -> None:
    for params in (_day(option, "minute"), _day(option, "minute", format="csv")):
        response = APIClient().get(URL, params)

        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Api-Key"
        assert response["Content-Type"] == "application/json"


def test_an_api_key_or_a_browser_session_is_served(option: Instrument) -> None:
    _, key = ClientApiKey.objects.create_key(name="algo", user=UserFactory())
    browser = APIClient()
    browser.force_login(UserFactory())

    assert APIClient().get(URL, _day(option, "5minute"), HTTP_X_API_KEY=key).status_code == 200
    assert browser.get(URL, _day(option, "5minute")).status_code == 200


# -- JSON ------------------------------------------------------------------------------------------


def test_minutes_page_in_sql(
    key_client: APIClient, option: Instrument, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(4):  # key with its user, the instrument, count, the page
        body = key_client.get(URL, _day(option, "minute", limit=100, offset=100)).json()

    assert (body["instrument_token"], body["interval"], body["count"]) == (
        option.instrument_token,
        "minute",
        375,
    )
    assert len(body["results"]) == 100
    assert body["results"][0] == {
        "date": "2026-03-12T10:55:00+05:30",
        "open": 200.0,
        "high": 201.0,
        "low": 199.0,
        "close": 200.5,
        "volume": 10,
        "oi": 100,
    }
    assert "offset=200" in body["next"] and "offset" not in body["previous"].split("?")[1].replace(
        "limit", ""
    )


@pytest.mark.parametrize("interval", ["3minute", "15minute", "60minute", "day"])
def test_other_intervals_are_one_read_whatever_the_range(
    key_client: APIClient, option: Instrument, interval: str, django_assert_num_queries: Any
) -> None:
    long = {"from": _ist(DAY, 0, 0) - timedelta(days=59), "to": _ist(DAY, 23, 0) + timedelta(days=40)}
    with django_assert_num_queries(3):  # key with its user, the instrument, the bars
        day = key_client.get(URL, _day(option, interval, limit=1000)).json()
    with django_assert_num_queries(3):
        wide = key_client.get(
            URL, {**_day(option, interval, limit=1000), **{k: v.isoformat() for k, v in long.items()}}
        ).json()

    assert day["results"] == wide["results"] and day["count"] == len(day["results"]) > 0


def test_sixty_minute_bars_are_kites_grid_with_a_short_last_bar(
    key_client: APIClient, option: Instrument
) -> None:
    body = key_client.get(URL, _day(option, "60minute")).json()

    starts = [bar["date"] for bar in body["results"]]
    assert starts == [f"2026-03-12T{h:02d}:15:00+05:30" for h in range(9, 16)]
    last = body["results"][-1]
    assert (last["open"], last["close"], last["volume"], last["oi"]) == (460.0, 474.5, 150, 374)


def test_day_bars_are_stamped_at_midnight_ist(key_client: APIClient, option: Instrument) -> None:
    body = key_client.get(URL, _day(option, "day")).json()

    assert body["results"] == [
        {"date": "2026-03-12T00:00:00+05:30", "open": 100.0, "high": 475.0, "low": 99.0, "close": 474.5,
         "volume": 3750, "oi": 374}
    ]  # fmt: skip


def test_times_without_an_offset_are_ist_and_an_exchange_symbol_works(
    key_client: APIClient, option: Instrument
) -> None:
    params = {"instrument": f"NFO:{option.tradingsymbol}", "interval": "minute"}
    body = key_client.get(URL, {**params, "from": "2026-03-12T09:15:00", "to": "2026-03-12 09:16:00"}).json()

    assert [bar["date"] for bar in body["results"]] == [
        "2026-03-12T09:15:00+05:30",
        "2026-03-12T09:16:00+05:30",
    ]


# -- errors ------------------------------------------------------------------------------------------


SPANS = [
    ({"interval": interval, "from": "2020-01-01T00:00:00+05:30", "to": (datetime(2020, 1, 1, tzinfo=IST)
      + timedelta(days=days, seconds=1)).isoformat()}, "to", 400)
    for interval, days in KITE_MAX_SPAN_DAYS.items()
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"interval": "2minute"}, "interval", 400),
        ({"interval": None}, "interval", 400),
        ({"from": "yesterday"}, "from", 400),
        ({"to": "2026-13-40"}, "to", 400),
        ({"from": None}, "from", 400),
        ({"from": "2026-03-12T10:00:00+05:30", "to": "2026-03-12T09:59:59+05:30"}, "from", 400),
        ({"instrument": "NIFTY"}, "instrument", 400),
        ({"instrument": None}, "instrument", 400),
        ({"instrument": "NSE:NOT LISTED"}, "instrument", 404),
        ({"instrument": "42"}, "instrument", 404),
        *SPANS,
    ],
)
def test_bad_input_names_the_field(
    key_client: APIClient, option: Instrument, change: dict[str, Any], field: str, status: int
) -> None:
    params = {key: value for key, value in {**_day(option, "minute"), **change}.items() if value is not None}
    for extra in ({}, {"format": "csv"}):
        response = key_client.get(URL, {**params, **extra})

        assert response.status_code == status
        assert response["Content-Type"] == "application/json"  # also when CSV was asked for
        assert field in response.json()


def test_the_longest_span_is_accepted(key_client: APIClient, option: Instrument) -> None:
    end = _ist(DAY, 23, 59)
    for interval, days in KITE_MAX_SPAN_DAYS.items():
        params = {
            **_day(option, interval),
            "from": (end - timedelta(days=days)).isoformat(),
            "to": end.isoformat(),
        }
        assert key_client.get(URL, params).status_code == 200, interval


# -- CSV ---------------------------------------------------------------------------------------------


def _csv(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.parametrize("interval", ["minute", "15minute"])
def test_csv_is_the_whole_range_with_a_header(
    key_client: APIClient, option: Instrument, interval: str, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(3):  # key with its user, the instrument, the bars
        response = key_client.get(URL, _day(option, interval, format="csv", limit=5))
        rows = _csv(response)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"bars-{option.instrument_token}-{interval}.csv" in response["Content-Disposition"]
    assert rows[0] == ["date", "open", "high", "low", "close", "volume", "oi"]
    json_bars = key_client.get(URL, _day(option, interval, limit=1000)).json()["results"]
    assert len(rows) - 1 == len(json_bars) == (375 if interval == "minute" else 25)  # not paginated
    assert [row[0] for row in rows[1:]] == [bar["date"] for bar in json_bars]
    assert [[float(v) for v in row[1:]] for row in rows[1:]] == [
        [bar[k] for k in ("open", "high", "low", "close", "volume", "oi")] for bar in json_bars
    ]


def test_accept_text_csv_asks_for_csv_too(key_client: APIClient, option: Instrument) -> None:
    response = key_client.get(URL, _day(option, "30minute"), HTTP_ACCEPT="text/csv")

    assert response["Content-Type"].startswith("text/csv")
    assert _csv(response)[1][0] == "2026-03-12T09:15:00+05:30"


def test_the_openapi_schema_describes_both_formats(key_client: APIClient) -> None:
    schema = key_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operation = schema["paths"]["/api/v1/bars"]["get"]
    assert {"instrument", "interval", "from", "to", "format", "limit", "offset"} <= {
        p["name"] for p in operation["parameters"]
    }
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}


# -- kitesim as the oracle -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.clock  # kitesim's session follows the host's date
def test_fifteen_minute_bars_equal_kitesims_own(oracle: KiteOracle, key_client: APIClient) -> None:
    oracle.load_instruments(NIFTY_50, oracle.option)
    index = Instrument.objects.get(instrument_token=NIFTY_50)
    assert (index.exchange, index.segment, index.tradingsymbol) == ("NSE", "INDICES", "NIFTY 50")
    option = Instrument.objects.get(instrument_token=oracle.option)
    start, end = oracle.whole_days

    for token, key in ((NIFTY_50, "NSE:NIFTY 50"), (oracle.option, f"NFO:{option.tradingsymbol}")):
        oracle.store_minutes(token)
        params = {"instrument": key, "interval": "15minute", "from": start.isoformat(), "to": end.isoformat()}

        body = key_client.get(URL, params).json()
        exported = _csv(key_client.get(URL, {**params, "format": "csv"}))

        kite = oracle.candles(token, "15minute", start, end)
        assert body["count"] == len(kite) == 50
        assert [
            (datetime.fromisoformat(bar["date"]), bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"],
             bar["oi"]) for bar in body["results"]
        ] == [(c["date"], c["open"], c["high"], c["low"], c["close"], c["volume"], c["oi"]) for c in kite[:100]]  # fmt: skip
        assert [datetime.fromisoformat(row[0]) for row in exported[1:]] == [c["date"] for c in kite]
