"""``lease:feed:<account>``: at most one live feed per broker account, fleet-wide.

SET NX PX takes it; renewal and release only touch a lease we still hold (compare-and-set in
Lua), so a feed that stalled past its TTL can never extend or delete its successor's lease.
"""

import os
import socket
import uuid

from redis import Redis as SyncRedis
from redis.asyncio import Redis

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def lease_key(account_id: int) -> str:
    return f"lease:feed:{account_id}"


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class FeedLease:
    def __init__(self, redis: Redis, account_id: int, *, ttl_ms: int, holder: str | None = None) -> None:
        self.key = lease_key(account_id)
        self.holder = holder or holder_id()
        self._redis = redis
        self._ttl_ms = ttl_ms

    async def acquire(self) -> bool:
        return bool(await self._redis.set(self.key, self.holder, nx=True, px=self._ttl_ms))

    async def renew(self) -> bool:
        """False when the lease expired or another holder took it: the feed must stop."""
        return bool(await self._redis.eval(_RENEW, 1, self.key, self.holder, self._ttl_ms))

    async def release(self) -> None:
        await self._redis.eval(_RELEASE, 1, self.key, self.holder)


async def lease_holder(redis: Redis, account_id: int) -> str | None:
    value = await redis.get(lease_key(account_id))
    return value.decode() if isinstance(value, bytes) else value


def lease_holder_sync(redis: SyncRedis, account_id: int) -> str | None:
    value = redis.get(lease_key(account_id))
    return value.decode() if isinstance(value, bytes) else value
