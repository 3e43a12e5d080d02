"""Tick-driven rebalancing: a feed watches its underlyings' ticks against their ATM bands and asks for
a re-plan on the tick that leaves one, instead of waiting for the beat's backstop.

The planner stores each price token's band (``ticks.feeds.strikes.AtmBand``) in Redis; every feed
carrying that token checks each frame against it (one ``np.isin`` per frame). A crossing asks once
per band (``REBALANCE_PENDING_KEY``, SET NX, dedupes it across feeds) and the ``feeds.rebalance`` task
re-plans. The feeds then time "crossing tick received -> first tick of a newly planned token" and keep
the last ``LATENCIES_KEPT`` figures for operators and ``bench/rebalance.py``.
"""

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import redis as sync_redis
from redis.asyncio import Redis

from ticks.feeds import metrics
from ticks.feeds.pipeline import TickBatch
from ticks.feeds.strikes import AtmBand

logger = logging.getLogger(__name__)

BANDS_KEY = "feeds:bands"  # JSON {token: [low, high, not_before]}
REBALANCE_PENDING_KEY = "feeds:rebalance:pending"
REBALANCE_PENDING_MS = 3000  # a lost request (worker down) blocks the next only this long
LATENCY_KEY = "feeds:rebalance:latency"  # newest first: JSON {version, account, crossed_at, seconds}
LATENCIES_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Crossing:
    token: int
    price: float
    received_at: float  # host epoch s
    market_at: float  # exchange epoch s of the crossing tick (0 when the tick carried none)


def bands_store(client: sync_redis.Redis, bands: dict[int, AtmBand]) -> bool:
    """Write the bands the feeds watch; True when they changed."""
    raw = json.dumps({str(t): [b.low, b.high, b.not_before] for t, b in sorted(bands.items())})
    previous = client.getset(BANDS_KEY, raw)
    return previous is None or previous.decode() != raw


async def bands_read(client: Redis) -> dict[int, AtmBand]:
    raw = await client.get(BANDS_KEY)
    return {int(t): AtmBand(*values) for t, values in json.loads(raw).items()} if raw else {}


class AtmWatch:
    """A frame hook: the first tick outside a band calls ``on_crossing`` (once per band)."""

    def __init__(self, on_crossing: Callable[[Crossing], Awaitable[None]]) -> None:
        self._on_crossing = on_crossing
        self._bands: dict[int, AtmBand] = {}
        self._tokens = np.empty(0, dtype=np.int64)
        self._asked: set[int] = set()

    def watch(self, bands: dict[int, AtmBand]) -> None:
        """New bands (a new plan or re-centre): every crossing may ask again."""
        self._bands = bands
        self._tokens = np.fromiter(bands, dtype=np.int64, count=len(bands))
        self._asked.clear()

    async def __call__(self, batch: TickBatch) -> None:
        if not self._bands:
            return
        ticks = batch.ticks[np.isin(batch.ticks["instrument_token"], self._tokens)]
        for token, price, stamp in zip(
            ticks["instrument_token"].tolist(),
            ticks["last_price"].tolist(),
            ticks["exchange_timestamp"].tolist(),
            strict=True,
        ):
            market_at = float(stamp) or batch.received_at
            if token in self._asked or not self._bands[token].crossed_by(price, market_at):
                continue
            self._asked.add(token)
            await self._on_crossing(Crossing(token, price, batch.received_at, float(stamp)))


async def rebalance_ask(client: Redis, crossing: Crossing, send: Callable[[dict], Awaitable[None]]) -> bool:
    """Ask for one re-plan however many feeds saw the crossing: True when this call asked."""
    if not await client.set(REBALANCE_PENDING_KEY, crossing.token, nx=True, px=REBALANCE_PENDING_MS):
        return False
    metrics.REBALANCE_ASKED.inc()
    await send(
        {
            "reason": f"tick {crossing.token} at {crossing.price:g} left its ATM band",
            "crossed_at": crossing.received_at,
            "market_at": crossing.market_at or None,
        }
    )
    return True


class FirstTickProbe:
    """A frame hook timing a tick-driven plan: crossing -> the first tick of a token it added here."""

    def __init__(self, client: Redis, account: str) -> None:
        self._client = client
        self._account = account
        self._pending: tuple[int, float, np.ndarray] | None = None

    def expect(self, version: int, crossed_at: float, added: set[int]) -> None:
        self._pending = (version, crossed_at, np.fromiter(added, dtype=np.int64, count=len(added)))

    async def __call__(self, batch: TickBatch) -> None:
        if self._pending is None:
            return
        version, crossed_at, added = self._pending
        if not np.isin(batch.ticks["instrument_token"], added).any():
            return
        self._pending = None
        seconds = batch.received_at - crossed_at
        metrics.REBALANCE_LATENCY.observe(seconds)
        record = {"version": version, "account": self._account, "crossed_at": crossed_at, "seconds": seconds}
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.lpush(LATENCY_KEY, json.dumps(record))
            pipe.ltrim(LATENCY_KEY, 0, LATENCIES_KEPT - 1)
            await pipe.execute()
