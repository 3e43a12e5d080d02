"""A feed that cannot prove it still holds its lease stops before the lease can lapse (workers.feed):
a host cut off from Redis must not go on streaming an account a successor has taken."""

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError

from workers.feed import _renewed


class _Lease:
    def __init__(
        self, answer: bool | None = None, hang_s: float = 0.0, error: Exception | None = None
    ) -> None:
        self.answer, self.hang_s, self.error = answer, hang_s, error

    async def renew(self) -> bool:
        await asyncio.sleep(self.hang_s)
        if self.error is not None:
            raise self.error
        return bool(self.answer)


async def test_a_renewal_answered_in_time_counts() -> None:
    assert await _renewed(_Lease(answer=True), timeout=1.0) is True
    assert await _renewed(_Lease(answer=False), timeout=1.0) is False


async def test_a_renewal_still_unanswered_when_the_lease_would_lapse_is_a_lost_lease() -> None:
    assert await _renewed(_Lease(answer=True, hang_s=5.0), timeout=0.05) is False


async def test_a_lease_already_past_its_ttl_is_lost_without_waiting() -> None:
    assert await _renewed(_Lease(answer=True, hang_s=0.01), timeout=-2.0) is False


async def test_redis_unreachable_is_a_lost_lease() -> None:
    assert await _renewed(_Lease(error=RedisConnectionError("cut off")), timeout=1.0) is False
