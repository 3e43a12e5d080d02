"""greeks_frame_seconds: one observation per frame whose option rows get IV and Greeks."""

import pytest
import redis
import redis.asyncio
from django.conf import settings
from prometheus_client import REGISTRY

from greeks.hook import GreeksHook
from greeks.tickpath import InstrumentTable, instrument_table_build
from tests.greeks.market import NOW, WEEKLY, chain_frame, instrument_rows
from ticks.feeds.pipeline import TickBatch

pytestmark = pytest.mark.integration  # the hook writes each frame's greeks to Redis


def _frames_timed(account: str) -> float:
    return REGISTRY.get_sample_value("greeks_frame_seconds_count", {"account": account}) or 0.0


async def test_a_frame_with_options_is_timed_under_its_account(redis_client: redis.Redis) -> None:
    table = instrument_table_build(instrument_rows())

    async def load() -> InstrumentTable:
        return table

    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    hook = GreeksHook(client, load_table=load, rate=0.065, model="black76", backend="numpy")
    before = _frames_timed("greeks-metrics-probe")
    try:
        await hook(TickBatch("greeks-metrics-probe", chain_frame(WEEKLY), float(NOW)))
    finally:
        await client.aclose()

    assert _frames_timed("greeks-metrics-probe") == before + 1
