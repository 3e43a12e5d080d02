import pytest
import redis.asyncio

from ticks.feeds.lease import FeedLease, lease_holder

pytestmark = pytest.mark.integration


async def test_only_one_holder_at_a_time(aredis: redis.asyncio.Redis) -> None:
    first, second = FeedLease(aredis, 7, ttl_ms=5000), FeedLease(aredis, 7, ttl_ms=5000)

    assert await first.acquire() is True
    assert await second.acquire() is False
    assert await lease_holder(aredis, 7) == first.holder


async def test_renew_and_release_never_touch_anothers_lease(aredis: redis.asyncio.Redis) -> None:
    stale = FeedLease(aredis, 7, ttl_ms=50)
    assert await stale.acquire()
    await aredis.delete("lease:feed:7")  # the TTL ran out while the holder stalled
    successor = FeedLease(aredis, 7, ttl_ms=5000)
    assert await successor.acquire()

    assert await stale.renew() is False
    await stale.release()

    assert await lease_holder(aredis, 7) == successor.holder
    assert await successor.renew() is True
    await successor.release()
    assert await lease_holder(aredis, 7) is None
