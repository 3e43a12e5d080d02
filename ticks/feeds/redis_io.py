"""The feeds' asyncio Redis client, packing commands with hiredis.

redis-py's asyncio connection packs every argument in Python; a frame's HSET of ~300 fields
took ~1.2 ms to pack and send. hiredis (already installed for reply parsing) packs the same
command in C, halving the write (bench/feed_throughput.py measures the whole path).
"""

import hiredis
from redis.asyncio import Connection, ConnectionPool, Redis
from redis.typing import EncodableT


class HiredisPackedConnection(Connection):
    def pack_command(self, *args: EncodableT) -> list[bytes]:
        return [hiredis.pack_command(args)]


def feed_redis(url: str) -> Redis:
    return Redis(connection_pool=ConnectionPool.from_url(url, connection_class=HiredisPackedConnection))
