import numpy as np
import pytest
import redis
import redis.asyncio
from prometheus_client import REGISTRY

from tests.ticks.feeds.frames import frame, full_packet, ltp_packet
from ticks.feeds.latest import LatestTickCache, latest_ticks_read
from ticks.feeds.pipeline import FrameProcessor, TickBatch
from ticks.feeds.protocol import decode_frame

pytestmark = pytest.mark.integration

NFO_A, NFO_B = 1001 << 8 | 2, 1002 << 8 | 2


async def test_one_frame_is_one_write_and_reads_back_row_for_row(
    aredis: redis.asyncio.Redis, redis_client: redis.Redis
) -> None:
    ticks = decode_frame(frame([full_packet(NFO_A, last_price=12345), ltp_packet(NFO_B, last_price=500)]))

    await LatestTickCache(aredis)(TickBatch("acct", ticks, 0.0))

    read = latest_ticks_read(redis_client, [NFO_B, 999, NFO_A])
    assert read["instrument_token"].tolist() == [NFO_B, NFO_A]
    assert read["last_price"].tolist() == [5.0, 123.45]
    np.testing.assert_array_equal(read[1], ticks[0])


async def test_a_malformed_frame_is_counted_and_the_stream_goes_on(aredis: redis.asyncio.Redis) -> None:
    seen: list[int] = []

    async def hook(batch: TickBatch) -> None:
        seen.extend(batch.ticks["instrument_token"].tolist())

    processor = FrameProcessor("acct-malformed", hooks=[hook])
    good = frame([ltp_packet(NFO_A, last_price=100)])

    await processor(good[:-3], 0.0)  # truncated
    await processor(b"\x00", 0.0)  # heartbeat
    await processor(good, 0.0)

    assert seen == [NFO_A]
    assert REGISTRY.get_sample_value("feed_decode_errors_total", {"account": "acct-malformed"}) == 1
