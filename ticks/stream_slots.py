"""Connection caps of ``/ws/stream/``, counted in Redis so they hold across web processes.

Each cap is a sorted set (``stream:slots:key:<prefix>`` or ``stream:slots:user:<id>``, and
``stream:slots:ip:<address>``) whose members are the connections' channel names, scored by when they
expire. A connection takes a slot in both sets at once or in neither (one Lua script), renews it
every third of STREAM_SLOT_TTL_S and gives it back when it ends; a web process that is killed cannot
give its slots back, so they lapse within STREAM_SLOT_TTL_S instead of being held forever. Times are
Redis's own clock (TIME), the same for every web host.
"""

import asyncio
from weakref import WeakKeyDictionary

import redis.asyncio
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

SLOTS_KEY = "stream:slots:{}"

# KEYS: the cap sets; ARGV: member, ttl (s), then each set's cap. Returns 0, or the 1-based index of
# the first set that is full. Expired members are dropped first: they are connections that are gone.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', t)
  if not redis.call('ZSCORE', key, ARGV[1]) and redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, t + tonumber(ARGV[2]), ARGV[1])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[2])) + 1)
end
return 0
"""

_clients: WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = WeakKeyDictionary()


def stream_redis() -> redis.asyncio.Redis:
    """The event loop's client for tickets and slots (short timeouts: a connect must not hang)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = stream_redis_connect(settings.REDIS_URL)
    return client


def stream_redis_connect(url: str) -> redis.asyncio.Redis:
    """Short timeouts and two quick retries: with Redis down, a browser's handshake gets its 4503 in
    well under a second (redis-py's default three retries, jittered up to 1, 2 and 4 s, took up to ~7 s,
    past a client's open timeout on a busy machine)."""
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2)
    return redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, retry=retry)


def slot_keys(cap_name: str, address: str) -> list[str]:
    return [SLOTS_KEY.format(cap_name), SLOTS_KEY.format(f"ip:{address}")]


async def slot_take(client: redis.asyncio.Redis, member: str, keys: list[str]) -> str | None:
    """Take (or renew) ``member``'s slot under both caps; None when taken, else which cap is full."""
    caps = [settings.STREAM_MAX_CONNECTIONS_PER_KEY, settings.STREAM_MAX_CONNECTIONS_PER_IP]
    full = await client.eval(_TAKE, len(keys), *keys, member, settings.STREAM_SLOT_TTL_S, *caps)
    if full == 0:
        return None
    per = "API key or user" if full == 1 else "client address"
    return f"at most {caps[full - 1]} stream connections per {per}"


async def slot_release(client: redis.asyncio.Redis, member: str, keys: list[str]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zrem(key, member)
        await pipe.execute()
