"""The latest tick per instrument token, in one Redis hash of raw decoder rows.

Rows are stored as the decoder's structured-dtype bytes: writing a frame is one HSET of
N fields, reading N tokens is one HMGET and one ``np.frombuffer``.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from ticks.feeds.pipeline import TickBatch
from ticks.feeds.protocol import TICK_DTYPE

LATEST_KEY = "ticks:latest"


class LatestTickCache:
    """A publish hook: one HSET per frame."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def __call__(self, batch: TickBatch) -> None:
        rows = np.ascontiguousarray(batch.ticks)
        raw = rows.tobytes()
        size = TICK_DTYPE.itemsize
        mapping = {
            token: raw[i * size : (i + 1) * size] for i, token in enumerate(rows["instrument_token"].tolist())
        }
        await self._redis.hset(LATEST_KEY, mapping=mapping)


def latest_ticks_read(redis: SyncRedis, tokens: Sequence[int]) -> npt.NDArray[np.void]:
    """Rows for the tokens that have ticked, in the order asked; missing tokens are left out."""
    if not tokens:
        return np.empty(0, dtype=TICK_DTYPE)
    found = [raw for raw in redis.hmget(LATEST_KEY, list(tokens)) if raw is not None]
    return np.frombuffer(b"".join(found), dtype=TICK_DTYPE)
