"""Chain, snapshot and history endpoints over the database and Redis (db 15)."""

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis
import redis.asyncio
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from greeks.engine import IST
from greeks.hook import GreeksHook
from greeks.models import GreeksSnapshot
from greeks.services import greeks_snapshot_take
from greeks.tasks import snapshot
from greeks.tickpath import instrument_table_build
from tests.greeks.market import (
    MONTHLY,
    NOW,
    SPOT,
    STRIKES,
    WEEKLY,
    chain_frame,
    instrument_rows,
    option_token,
    options,
    smile,
    true_forward,
    years,
)
from tests.ticks.factories import OptionFactory, WatchSpecFactory
from ticks.feeds.latest import LatestTickCache
from ticks.feeds.pipeline import TickBatch

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CHAIN = f"/api/v1/chains/NIFTY/{WEEKLY.isoformat()}"
ATM = 24_800.0


@pytest.fixture
def listed(redis_client: redis.Redis) -> None:
    """The instruments of tests.greeks.market in the database: both NIFTY chains, 21 strikes each."""
    for expiry in (WEEKLY, MONTHLY):
        for option in options(expiry):
            OptionFactory(
                instrument_token=option.token,
                expiry=expiry,
                strike=Decimal(option.strike),
                instrument_type=option.kind,
            )


def _stream(*frames: npt.NDArray[np.void], greeks: bool = True) -> None:
    """Run frames through the latest-tick cache and (unless told not to) the greeks hook."""

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        hooks: list[Any] = [LatestTickCache(client)]
        if greeks:
            table = instrument_table_build(instrument_rows())

            async def load() -> Any:
                return table

            hooks.append(GreeksHook(client, load_table=load))
        try:
            for ticks in frames:
                batch = TickBatch("acct", ticks, float(ticks["exchange_timestamp"].max()))
                for hook in hooks:
                    await hook(batch)
        finally:
            await client.aclose()

    asyncio.run(run())


def _leg(body: dict[str, Any], strike: float, kind: str) -> dict[str, Any]:
    (row,) = [row for row in body["strikes"] if row["strike"] == strike]
    return row[kind]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, IST).isoformat()


@pytest.mark.usefixtures("listed")
def test_the_live_chain_has_both_legs_per_strike_with_greeks(
    key_client: APIClient, django_assert_num_queries: Any
) -> None:
    frame = chain_frame(WEEKLY)
    frame["last_trade_time"] = NOW - 5
    _stream(frame)

    with django_assert_num_queries(2):  # key with its user, the chain's options
        response = key_client.get(CHAIN)

    assert response.status_code == 200
    body = response.json()
    assert body["underlying"] == "NIFTY" and body["expiry"] == WEEKLY.isoformat()
    assert body["source"] == "live"
    assert datetime.fromisoformat(body["as_of"]).timestamp() == NOW
    assert body["forward"] == pytest.approx(true_forward(WEEKLY), abs=1e-6)
    assert body["forward_source"] == "parity"
    assert body["atm_strike"] == 24_850.0  # nearest the forward, 24,832
    assert body["t_years"] == pytest.approx(years(WEEKLY), abs=1e-12)
    assert [row["strike"] for row in body["strikes"]] == STRIKES.tolist()
    call = _leg(body, ATM, "CE")
    assert set(call) == {
        "instrument_token", "last_price", "bid", "ask", "oi", "volume",
        "iv", "iv_mid", "delta", "gamma", "theta", "vega", "rho", "status", "last_trade_time",
    }  # fmt: skip
    assert call["last_trade_time"] == _iso(NOW - 5)  # an ISO datetime in IST, as as_of
    assert call["status"] == "ok" and call["instrument_token"] == option_token(WEEKLY, ATM, True)
    assert call["iv"] == pytest.approx(float(smile(ATM, true_forward(WEEKLY), years(WEEKLY))), abs=1e-8)
    assert 0.4 < call["delta"] < 0.6 and _leg(body, ATM, "PE")["delta"] < 0
    assert call["iv_mid"] is None  # the frame had no depth


@pytest.mark.usefixtures("listed")
def test_a_chain_with_no_prices_yet_is_all_no_price(key_client: APIClient) -> None:
    response = key_client.get(CHAIN)

    assert response.status_code == 200
    body = response.json()
    legs = [row[kind] for row in body["strikes"] for kind in ("CE", "PE")]
    assert len(legs) == 42
    assert {leg["status"] for leg in legs} == {"no_price"}
    assert {leg["iv"] for leg in legs} == {None} and {leg["last_price"] for leg in legs} == {None}
    assert (body["forward"], body["atm_strike"], body["as_of"], body["t_years"]) == (None, None, None, None)


@pytest.mark.usefixtures("listed")
def test_ticks_without_greeks_yet_are_pending(key_client: APIClient) -> None:
    _stream(chain_frame(WEEKLY), greeks=False)

    body = key_client.get(CHAIN).json()

    assert _leg(body, ATM, "CE")["status"] == "pending"
    assert _leg(body, ATM, "CE")["last_price"] > 0
    assert datetime.fromisoformat(body["as_of"]).timestamp() == NOW
    assert body["forward"] is None


@pytest.mark.usefixtures("listed")
def test_each_leg_carries_its_own_status(key_client: APIClient) -> None:
    frame_rows = chain_frame(WEEKLY)
    tokens = frame_rows["instrument_token"]
    frame_rows["last_price"][tokens == option_token(WEEKLY, SPOT + 50, True)] = 0.0
    frame_rows["last_price"][tokens == option_token(WEEKLY, SPOT - 500, True)] = 500.0  # below intrinsic
    _stream(frame_rows)

    body = key_client.get(CHAIN).json()

    assert _leg(body, SPOT + 50, "CE")["status"] == "no_price"
    below = _leg(body, SPOT - 500, "CE")
    assert below["status"] == "below_intrinsic"
    assert below["iv"] is None and below["last_price"] == 500.0


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        (f"/api/v1/chains/NOPE/{WEEKLY.isoformat()}", 404, "underlying"),
        ("/api/v1/chains/NIFTY/2030-01-01", 404, "expiry"),
        ("/api/v1/chains/NIFTY/next-week", 400, "expiry"),
        (f"{CHAIN}?at=yesterday-ish", 400, "at"),
        (f"{CHAIN}?at=2026-12-01T10:00:00%2B05:30", 404, "at"),
        (f"/api/v1/chains/NOPE/{WEEKLY.isoformat()}?at=2026-12-01T10:00:00", 404, "underlying"),
        (f"{CHAIN}/history", 400, "strike"),
        (f"{CHAIN}/history?strike=abc", 400, "strike"),
        (f"{CHAIN}/history?strike=24800", 404, "strike"),
        ("/api/v1/chains/NIFTY/2030-01-01/history?strike=24800", 404, "expiry"),
        (f"{CHAIN}/history?strike=24800&date=01-12-2026", 400, "date"),
    ],
)
def test_bad_input_gets_a_message_naming_the_field(
    key_client: APIClient, path: str, status: int, field: str
) -> None:
    response = key_client.get(path)

    assert response.status_code == status
    body = response.json()
    assert field in body
    assert body.get("detail", body[field][0])


def test_the_expiry_list_route_still_wins(key_client: APIClient) -> None:
    OptionFactory(expiry=WEEKLY)

    assert key_client.get("/api/v1/chains/NIFTY/expiries").json() == {
        "underlying": "NIFTY",
        "expiries": [WEEKLY.isoformat()],
    }


@pytest.fixture
def two_minutes(listed: None) -> tuple[float, float]:
    """Snapshots of the weekly chain at 10:00 and 10:02 (market time), the spot 100 points apart."""
    WatchSpecFactory(underlying="NIFTY")
    client = redis.Redis.from_url(settings.REDIS_URL)
    later = NOW + 120
    for when, spot in ((NOW, SPOT), (later, SPOT + 100)):
        _stream(chain_frame(WEEKLY, now=when, spot=spot))
        greeks_snapshot_take(redis_client=client)
    client.close()
    return NOW, later


def test_at_serves_the_stored_minute_at_or_before(
    key_client: APIClient, two_minutes: tuple[float, float], django_assert_num_queries: Any
) -> None:
    first, second = two_minutes

    with django_assert_num_queries(2):  # key with its user, the minute's rows
        early = key_client.get(CHAIN, {"at": _iso(first + 90)}).json()
    late = key_client.get(CHAIN, {"at": _iso(second + 3600)}).json()

    assert early["source"] == "snapshot"
    assert datetime.fromisoformat(early["as_of"]).timestamp() == first
    assert early["forward"] == pytest.approx(true_forward(WEEKLY, first), abs=1e-6)
    assert datetime.fromisoformat(late["as_of"]).timestamp() == second
    assert late["forward"] == pytest.approx(true_forward(WEEKLY, second, SPOT + 100), abs=1e-6)
    assert (early["atm_strike"], late["atm_strike"]) == (24_850.0, 24_950.0)
    assert _leg(early, ATM, "CE")["iv"] == pytest.approx(
        float(smile(ATM, true_forward(WEEKLY, first), years(WEEKLY, first))), abs=1e-8
    )
    assert _leg(late, ATM, "PE")["status"] == "ok"
    assert len(late["strikes"]) == 21
    assert {row[kind]["last_trade_time"] for row in late["strikes"] for kind in ("CE", "PE")} == {None}


def test_history_is_the_iv_at_one_strike_minute_by_minute(
    key_client: APIClient, two_minutes: tuple[float, float], django_assert_num_queries: Any
) -> None:
    first, second = two_minutes

    with django_assert_num_queries(3):  # key with its user, the latest minute, the day's rows
        response = key_client.get(f"{CHAIN}/history", {"strike": "24800"})

    assert response.status_code == 200
    body = response.json()
    assert (body["strike"], body["date"]) == (ATM, "2026-12-01")
    points = body["points"]
    assert [datetime.fromisoformat(p["taken_at"]).timestamp() for p in points] == [first, second]
    for point, when, spot in zip(points, (first, second), (SPOT, SPOT + 100), strict=True):
        forward = true_forward(WEEKLY, when, spot)
        expected = float(smile(ATM, forward, years(WEEKLY, when)))
        assert point["call_iv"] == pytest.approx(expected, abs=1e-8)
        assert point["put_iv"] == pytest.approx(expected, abs=1e-6)
        assert point["iv"] == (point["call_iv"] if forward <= ATM else point["put_iv"])
    with django_assert_num_queries(2):  # with the day given: no latest-minute query
        assert (
            key_client.get(f"{CHAIN}/history", {"strike": "24800", "date": "2026-12-01"}).status_code == 200
        )
    assert key_client.get(f"{CHAIN}/history", {"strike": "24800", "date": "2026-12-02"}).status_code == 404


def test_a_snapshot_is_one_bulk_insert_and_a_rerun_in_the_same_minute_adds_nothing(
    listed: None, redis_client: redis.Redis
) -> None:
    WatchSpecFactory(underlying="NIFTY")
    _stream(chain_frame(WEEKLY, now=NOW + 7))  # 10:00:07: stored as the 10:00 minute

    with CaptureQueriesContext(connection) as queries:
        offered = greeks_snapshot_take(redis_client=redis_client)

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    fields = len(GreeksSnapshot._meta.concrete_fields) - 1
    batches = -(-offered // connection.ops.bulk_batch_size([None] * fields, [None] * offered))
    assert offered == 42 and len(inserts) == batches  # one bulk_create; SQLite splits it at 999 parameters
    # the watch list, the chains, one read of the one chain with greeks (the monthly has none)
    assert len(queries) - len(inserts) == 3
    rows = GreeksSnapshot.objects.all()
    assert rows.count() == 42
    assert {row.taken_at.timestamp() for row in rows} == {NOW}
    assert {row.status for row in rows} == {"ok"}

    snapshot.delay()  # the beat task, eagerly: same market minute, nothing new
    assert GreeksSnapshot.objects.count() == 42


def test_the_task_stores_nothing_before_the_tick_path_has_run(listed: None) -> None:
    WatchSpecFactory(underlying="NIFTY")

    assert snapshot.apply().get() == 0
    assert GreeksSnapshot.objects.count() == 0


def test_history_spans_a_whole_ist_day(listed: None, key_client: APIClient) -> None:
    WatchSpecFactory(underlying="NIFTY")
    client = redis.Redis.from_url(settings.REDIS_URL)
    day_start = int(datetime(2026, 12, 2, 0, 0, tzinfo=IST).timestamp())
    # 23:59 the day before, 00:00 and 15:29 of the day: only the last two belong to 2026-12-02
    for when in (day_start - 60, day_start, day_start + timedelta(hours=15, minutes=29).seconds):
        _stream(chain_frame(WEEKLY, now=when))
        greeks_snapshot_take(redis_client=client)
    client.close()

    body = key_client.get(f"{CHAIN}/history", {"strike": "24800"}).json()

    assert body["date"] == "2026-12-02"
    assert len(body["points"]) == 2


def test_the_openapi_schema_gives_a_legs_last_trade_time_as_a_nullable_datetime(
    key_client: APIClient,
) -> None:
    schema = key_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    leg = schema["components"]["schemas"]["OptionOutput"]["properties"]["last_trade_time"]
    assert (leg["type"], leg["format"], leg["nullable"]) == ("string", "date-time", True)
    history = schema["components"]["schemas"]["OptionHistoryPoint"]["properties"]
    assert "last_trade_time" not in history  # stored minutes do not keep it
