"""Shared chain snapshots: concurrent requests share a read that began after they asked."""

import asyncio
import threading

import pytest

from ticks import snapshots
from ticks.stream import StreamError

# The reads go through Channels' database_sync_to_async, which checks the executor thread's database
# connection first: after a test that left one there, that check needs database access.
pytestmark = pytest.mark.django_db


class SlowReads:
    """Stands in for stream_snapshot (a database read): numbered reads that wait to be let go."""

    def __init__(self) -> None:
        self.count = 0
        self.release = threading.Event()

    def __call__(self, chain: str) -> dict:
        self.count += 1
        number = self.count
        self.release.wait(5)
        if chain == "BAD:2026-12-01":
            raise StreamError("unknown chain", field="chain")
        return {"chain": chain, "read": number}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> SlowReads:
    slow = SlowReads()
    monkeypatch.setattr(snapshots, "stream_snapshot", slow)
    return slow


async def test_requests_that_arrive_together_share_one_read(reads: SlowReads) -> None:
    asking = [asyncio.create_task(snapshots.shared_snapshot("NIFTY:2026-12-01")) for _ in range(50)]
    await asyncio.sleep(0.05)
    reads.release.set()

    answers = await asyncio.gather(*asking)

    assert reads.count == 1 and {answer["read"] for answer in answers} == {1}


async def test_a_request_during_a_read_waits_for_the_next_read(reads: SlowReads) -> None:
    first = asyncio.create_task(snapshots.shared_snapshot("NIFTY:2026-12-01"))
    await asyncio.sleep(0.05)  # the first read is under way: it may predate what joins now
    later = [asyncio.create_task(snapshots.shared_snapshot("NIFTY:2026-12-01")) for _ in range(10)]
    await asyncio.sleep(0.05)
    reads.release.set()

    assert (await first)["read"] == 1
    assert {answer["read"] for answer in await asyncio.gather(*later)} == {2}
    assert reads.count == 2


async def test_chains_are_read_apart_and_errors_reach_every_caller(reads: SlowReads) -> None:
    good = asyncio.create_task(snapshots.shared_snapshot("NIFTY:2026-12-01"))
    bad = [asyncio.create_task(snapshots.shared_snapshot("BAD:2026-12-01")) for _ in range(3)]
    await asyncio.sleep(0.05)
    reads.release.set()

    assert (await good)["chain"] == "NIFTY:2026-12-01"
    for task in bad:
        with pytest.raises(StreamError):
            await task
    assert reads.count == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_others(reads: SlowReads) -> None:
    leaving = asyncio.create_task(snapshots.shared_snapshot("NIFTY:2026-12-01"))
    staying = asyncio.create_task(snapshots.shared_snapshot("NIFTY:2026-12-01"))
    await asyncio.sleep(0.05)
    leaving.cancel()
    reads.release.set()

    assert (await staying)["read"] == 1
