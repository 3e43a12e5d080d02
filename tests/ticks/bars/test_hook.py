"""BarsHook on the tick path: real frames through the FrameProcessor with the latest-tick cache on
real Redis, closed bars written to the real database off the hot path, failures kept for later."""

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest
import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.db import connections

from kitesim.wire import MODE_FULL, TickColumns, encode_frame
from tests.ticks.bars.test_aggregator import FUTURE, INDEX, OPTION, T0, frame
from ticks.bars.hook import BarsHook
from ticks.bars.records import BarRecord
from ticks.feeds.latest import LatestTickCache, latest_ticks_read
from ticks.feeds.pipeline import FrameProcessor, TickBatch
from ticks.models import Bar

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

COMPANION = 4_242 << 8 | 2


def wire_frame(second: int, price: float, volume: int) -> bytes:
    """A Kite binary frame: the option, the future, the index and a companion copy, at T0 + second."""
    columns = TickColumns.for_tokens(np.array([OPTION, FUTURE, INDEX, COMPANION]))
    columns.last[:] = [price, price * 100, price * 1000, price]
    columns.volume[:] = volume
    columns.oi[:] = 700
    columns.timestamp[:] = T0 + second
    return encode_frame(columns, {MODE_FULL: np.arange(4)})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class GatedWriter:
    """Writes to the list when let go; fails while ``failing``."""

    def __init__(self) -> None:
        self.written: list[list[BarRecord]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False
        self.calls = 0

    async def __call__(self, records: list[BarRecord]) -> None:
        self.calls += 1
        await self.gate.wait()
        if self.failing:
            from django.db import OperationalError

            raise OperationalError("database is down")
        self.written.append(records)


def _stored() -> list[tuple]:
    return list(
        Bar.objects.order_by("instrument_token", "start").values_list(
            "instrument_token", "start", "open", "high", "low", "close", "volume", "oi", "ticks", "source"
        )
    )


def _at(second: int) -> datetime:
    return datetime.fromtimestamp(T0 + second, UTC)


async def test_frames_through_the_pipeline_make_bars_in_the_database(
    aredis: redis.asyncio.Redis, redis_client: redis.Redis
) -> None:
    bars = BarsHook("acct")
    bars.set_primary([OPTION, FUTURE, INDEX])  # the companion is primary on another account
    seen: list[dict] = []

    async def keep(batch: TickBatch) -> None:
        seen.append(batch.derived)

    processor = FrameProcessor("acct", hooks=[LatestTickCache(aredis), bars, keep])
    for second, price, volume in [(-65, 9.0, 50), (1, 10.0, 100), (20, 12.5, 130), (59, 11.0, 160)]:
        await processor(wire_frame(second, price, volume), T0 + second + 0.01)
    await processor(b"\x00", T0 + 59.5)  # a heartbeat
    await processor(wire_frame(61, 10.5, 175), T0 + 61.01)
    await bars.aclose()
    stored = await sync_to_async(_stored)()
    # The writes ran in Django's sync thread: close its connection, or the next test that reaches
    # that thread (database_sync_to_async) finds it open and pytest-django refuses the access.
    await sync_to_async(connections.close_all)()

    assert stored == [
        (INDEX, _at(0), 10000.0, 12500.0, 10000.0, 11000.0, 0, 0, 3, "live"),
        (FUTURE, _at(0), 1000.0, 1250.0, 1000.0, 1100.0, 110, 700, 3, "live"),
        (OPTION, _at(0), 10.0, 12.5, 10.0, 11.0, 110, 700, 3, "live"),
    ]  # the first (partial) minute and the forming one are not written
    assert latest_ticks_read(redis_client, [COMPANION])["last_price"].tolist() == [10.5]  # the cache has all
    assert [int(t) for t in seen[-1]["bars"]["instrument_token"]] == sorted([OPTION, FUTURE, INDEX])


async def test_a_write_never_holds_up_frames_and_bars_closed_meanwhile_queue_behind_it() -> None:
    writer = GatedWriter()
    writer.gate.clear()  # the first write hangs
    bars = BarsHook("acct", write=writer)
    bars.set_primary([OPTION])
    for minute in range(4):
        await bars(TickBatch("acct", frame((OPTION, 10.0 + minute, T0 + 60 * minute + 1, 0, 0, "full")), 0.0))
        await asyncio.sleep(0)

    for _ in range(200):  # the records are built in a thread first: let the writer reach the database
        if writer.calls:
            break
        await asyncio.sleep(0.01)
    assert writer.calls == 1 and bars.pending == 1  # minute 1 written (hanging); minute 2 waits
    writer.gate.set()
    await bars.aclose()

    assert [[r.start - T0 for r in batch] for batch in writer.written] == [[60], [120]]


async def test_a_failed_write_is_kept_and_written_with_the_next_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = GatedWriter()
    writer.failing = True
    bars = BarsHook("acct", write=writer, retry_s=0.05)
    bars.set_primary([OPTION])
    for minute in range(3):
        await bars(TickBatch("acct", frame((OPTION, 10.0, T0 + 60 * minute + 1, 0, 0, "full")), 0.0))
    await asyncio.sleep(0.12)
    failures = writer.calls

    writer.failing = False
    await bars.aclose()

    assert failures >= 2 and "writing 1 closed bars" in caplog.text
    assert [r.start - T0 for batch in writer.written for r in batch] == [60]
    assert bars.pending == 0


async def test_a_quiet_market_closes_the_minute_after_a_grace() -> None:
    clock, writer = Clock(), GatedWriter()
    bars = BarsHook("acct", write=writer, grace_s=5.0, monotonic=clock)
    bars.set_primary([OPTION])
    await bars(TickBatch("acct", frame((OPTION, 10.0, T0 + 1, 0, 0, "full")), 0.0))
    await bars(TickBatch("acct", frame((OPTION, 11.0, T0 + 70, 0, 0, "full")), 0.0))  # minute 1 opens

    clock.now += 54.0  # market time T0 + 124 - 5: minute 1 (ending T0 + 120) is still in its grace
    bars.close_quiet()
    assert bars.aggregator.forming().size == 1
    clock.now += 2.0
    bars.close_quiet()
    await bars.aclose()

    assert bars.aggregator.forming().size == 0
    assert [(r.start - T0, r.close) for batch in writer.written for r in batch] == [(60, 11.0)]


async def test_minutes_outside_the_session_are_neither_written_nor_streamed() -> None:
    """Kite streams the index in the pre-open (09:00-09:08) and after 15:30; candles are 09:15-15:29."""
    writer = GatedWriter()
    bars = BarsHook("acct", write=writer)
    bars.set_primary([OPTION])
    day = T0 - (T0 + 19_800) % 86_400  # 00:00 IST of T0's day
    streamed = []
    for clock in ("09:05:01", "09:06:01", "09:07:01", "15:28:01", "15:29:01", "15:30:01", "15:31:01"):
        hours, minutes, seconds = map(int, clock.split(":"))
        batch = TickBatch(
            "acct", frame((OPTION, 10.0, day + 3600 * hours + 60 * minutes + seconds, 0, 0, "full")), 0.0
        )
        await bars(batch)
        streamed += (
            [int(start) - day for start in batch.derived.get("bars", np.empty(0))["start"]]
            if "bars" in batch.derived
            else []
        )
    await bars.aclose()

    written = [r.start - day for batch in writer.written for r in batch]
    assert written == [15 * 3600 + 28 * 60, 15 * 3600 + 29 * 60]  # not 09:06 (complete, pre-open) nor 15:30
    assert streamed == [15 * 3600 + 28 * 60, 15 * 3600 + 29 * 60]


async def test_closed_bars_past_the_cap_drop_the_oldest_and_count_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ticks.bars.hook.MAX_PENDING_BARS", 2)
    writer = GatedWriter()
    writer.gate.clear()  # the database hangs
    bars = BarsHook("acct", write=writer)
    bars.set_primary([OPTION])
    for minute in range(6):
        await bars(TickBatch("acct", frame((OPTION, 10.0, T0 + 60 * minute + 1, 0, 0, "full")), 0.0))
        await asyncio.sleep(0)
    kept = bars.pending
    writer.gate.set()
    await bars.aclose()

    assert kept == 2
    written = sorted(r.start - T0 for batch in writer.written for r in batch)
    assert written[-2:] == [180, 240] and 120 not in written  # minute 2 was dropped, the newest kept
