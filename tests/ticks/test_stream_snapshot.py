"""A chain's snapshot for the stream: rows from the latest-tick and greeks caches, OI at the previous
close from the stored bars, the lot size, the nearest future and the chain's exchange time."""

import asyncio
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis
import redis.asyncio
from django.conf import settings
from django.test import override_settings

from greeks.hook import GreeksHook
from greeks.tickpath import InstrumentTable, instrument_table_build
from tests.greeks.market import (
    FUTURE_TOKEN,
    INDEX_TOKEN,
    MONTHLY,
    NOW,
    WEEKLY,
    chain_frame,
    instrument_rows,
    options,
)
from tests.ticks.factories import FutureFactory, OptionFactory
from ticks.bars.records import BarRecord
from ticks.bars.services import bars_upsert
from ticks.feeds.latest import LatestTickCache
from ticks.feeds.pipeline import TickBatch
from ticks.market_time import IST
from ticks.models import Instrument
from ticks.stream import stream_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.django_db]  # the caches are in Redis

CHAIN = f"NIFTY:{WEEKLY.isoformat()}"
MONDAY = date(2026, 11, 30)  # NOW is Tuesday 2026-12-01 10:00 IST
TRADED = [option.token for option in options(WEEKLY)]


@pytest.fixture
def listed(redis_client: redis.Redis) -> None:
    """The weekly chain of tests.greeks.market, the NIFTY 50 index and three futures."""
    for option in options(WEEKLY):
        OptionFactory(
            instrument_token=option.token,
            expiry=WEEKLY,
            strike=Decimal(option.strike),
            instrument_type=option.kind,
            lot_size=75,
        )
    Instrument.objects.create(
        instrument_token=INDEX_TOKEN, exchange_token=1001, tradingsymbol="NIFTY 50", name="NIFTY 50",
        instrument_type=Instrument.Type.EQ, segment="INDICES", exchange="NSE", loaded_at=datetime.now(IST),
    )  # fmt: skip
    FutureFactory(expiry=date(2026, 11, 24))  # expired a week before the market day, still listed
    FutureFactory(instrument_token=FUTURE_TOKEN, expiry=MONTHLY)
    FutureFactory(expiry=date(2027, 1, 26))


def _stream(ticks: npt.NDArray[np.void]) -> None:
    """One frame through the latest-tick cache and the greeks hook, as a feed runs them."""

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        table = instrument_table_build(instrument_rows())

        async def load() -> InstrumentTable:
            return table

        try:
            batch = TickBatch("acct", ticks, float(ticks["exchange_timestamp"].max()))
            for hook in (LatestTickCache(client), GreeksHook(client, load_table=load)):
                await hook(batch)
        finally:
            await client.aclose()

    asyncio.run(run())


def _minute(token: int, day: date, hour: int, minute: int, oi: int) -> BarRecord:
    start = datetime.combine(day, time(hour, minute), tzinfo=IST).timestamp()
    return BarRecord(token, "minute", start, 10.0, 10.0, 10.0, 10.0, 0, oi)


@pytest.mark.usefixtures("listed")
def test_the_snapshot_has_the_header_and_per_row_oi_prev_and_last_trade_time(
    django_assert_num_queries: Any,
) -> None:
    frame = chain_frame(WEEKLY)  # the index, then the options, stamped NOW
    frame["last_trade_time"][1:] = NOW - 5
    frame["last_trade_time"][1] = 0  # ltp and quote packets have none
    _stream(frame)
    bars_upsert(
        records=[
            _minute(TRADED[0], MONDAY, 15, 29, 1_500),  # the previous session's close
            _minute(TRADED[0], date(2026, 12, 1), 9, 15, 9_999),  # today's: not the previous close
            _minute(TRADED[1], MONDAY, 11, 2, 700),  # its last trade on Monday
        ]
    )

    with django_assert_num_queries(5):  # legs, index, index and futures, lot size, OI at the previous close
        snapshot = stream_snapshot(CHAIN)

    assert (snapshot["lot_size"], snapshot["future_token"]) == (75, FUTURE_TOKEN)
    assert snapshot["index_token"] == INDEX_TOKEN
    assert snapshot["exchange_time"] == NOW
    assert datetime.fromisoformat(snapshot["as_of"]).timestamp() == NOW
    rows = {row["instrument_token"]: row for row in snapshot["rows"]}
    assert len(rows) == 42
    assert {token: rows[token]["oi_prev"] for token in TRADED[:3]} == {
        TRADED[0]: 1_500,
        TRADED[1]: 700,
        TRADED[2]: None,
    }
    untraded = int(frame["instrument_token"][1])
    assert rows[untraded]["last_trade_time"] is None
    assert {row["last_trade_time"] for token, row in rows.items() if token != untraded} == {NOW - 5}


@pytest.mark.usefixtures("listed")
@override_settings(MARKET_CLOCK="2026-12-30T08:00:00+05:30")
def test_before_any_tick_the_market_clock_picks_the_future_and_the_previous_close() -> None:
    """No data yet: the market clock's day, never the host's, chooses the future and the session."""
    bars_upsert(
        records=[
            _minute(TRADED[0], date(2026, 12, 28), 15, 29, 400),  # Monday, before Tuesday's session
            _minute(TRADED[0], date(2026, 12, 29), 15, 29, 600),  # Tuesday 12-29: on screen at 08:00
        ]
    )

    snapshot = stream_snapshot(CHAIN)

    assert snapshot["exchange_time"] is None and snapshot["as_of"] is None
    assert snapshot["future_token"] != FUTURE_TOKEN  # the monthly expired on 12-29
    assert Instrument.objects.get(instrument_token=snapshot["future_token"]).expiry == date(2027, 1, 26)
    rows = {row["instrument_token"]: row for row in snapshot["rows"]}
    assert rows[TRADED[0]]["oi_prev"] == 400
    assert {row["last_trade_time"] for row in snapshot["rows"]} == {None}
    assert {row["status"] for row in snapshot["rows"]} == {"no_price"}


@pytest.mark.usefixtures("listed")
def test_a_chain_without_lot_size_or_future_says_null() -> None:
    Instrument.objects.filter(instrument_type=Instrument.Type.FUT).update(is_active=False)
    Instrument.objects.filter(expiry=WEEKLY).update(lot_size=0)
    _stream(chain_frame(WEEKLY))

    snapshot = stream_snapshot(CHAIN)

    assert (snapshot["lot_size"], snapshot["future_token"]) == (None, None)
    assert {row["oi_prev"] for row in snapshot["rows"]} == {None}
