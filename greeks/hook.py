"""The tick-path hook: IV and Greeks for every frame's option rows, next to the latest tick in Redis.

Per frame: one vectorised engine call (greeks.tickpath) and one HSET to ``greeks:latest``; the
result is also left in ``batch.derived["greeks"]`` for the hooks after this one. The
instrument table is loaded from the database on the first frame; a token it does not know starts a
reload in the background, at most once per ``refresh_interval_s``, and the frames meanwhile go on
with the table they have. A chain whose future or index has not ticked on this feed is looked up in
the latest-tick cache, at most once per ``remote_interval_s``.
"""

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from redis.asyncio import Redis

from greeks.backends import implied_vol_and_greeks_for
from greeks.engine import Model
from greeks.metrics import FRAME_SECONDS
from greeks.records import GREEKS_LATEST_KEY
from greeks.selectors import instrument_table_load
from greeks.tickpath import (
    FrameGreeks,
    FrameView,
    InstrumentTable,
    PriceBoard,
    frame_greeks,
    frame_view,
    priced_at,
    sources_missing,
)
from ticks.clocks import ExchangeClock
from ticks.feeds.latest import LATEST_KEY
from ticks.feeds.pipeline import TickBatch
from ticks.feeds.protocol import TICK_DTYPE

logger = logging.getLogger(__name__)

TABLE_REFRESH_S = 30.0
REMOTE_SOURCES_S = 1.0

TableLoader = Callable[[], Awaitable[InstrumentTable]]


async def _table_from_db() -> InstrumentTable:
    return await sync_to_async(instrument_table_load)()


class GreeksHook:
    """A FrameProcessor hook; rate, model and backend default to the GREEKS_* settings."""

    def __init__(
        self,
        redis: Redis,
        *,
        load_table: TableLoader = _table_from_db,
        rate: float | None = None,
        model: Model | None = None,
        backend: str | None = None,
        refresh_interval_s: float = TABLE_REFRESH_S,
        remote_interval_s: float = REMOTE_SOURCES_S,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._load_table = load_table
        self.rate: float = settings.GREEKS_RATE if rate is None else rate
        self.model: Model = settings.GREEKS_MODEL if model is None else model
        self.backend: str = backend or settings.GREEKS_BACKEND
        self._solve = implied_vol_and_greeks_for(self.backend)
        self._refresh_interval_s = refresh_interval_s
        self._remote_interval_s = remote_interval_s
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._table: InstrumentTable | None = None
        self._board = PriceBoard.empty(0)
        self._reload: asyncio.Task[InstrumentTable] | None = None
        self._load_started_at = -math.inf
        self._remote_at = -math.inf
        self._exchange_clock = ExchangeClock()

    @property
    def table(self) -> InstrumentTable | None:
        return self._table

    @property
    def pending_reload(self) -> "asyncio.Task[InstrumentTable] | None":
        """The background table reload in flight, if any (installed by the next frame once done)."""
        return self._reload

    async def __call__(self, batch: TickBatch) -> None:
        await self.ensure_table()
        view = self._view(batch)
        self._reload_if_unknown(view)
        if view.options.size == 0:
            return
        await self._fetch_missing_sources(view)
        started = time.perf_counter()
        result = self._greeks(view)
        FRAME_SECONDS.labels(batch.account).observe(time.perf_counter() - started)
        batch.derived["greeks"] = result  # the stream fan-out sends these with the ticks
        await self._redis.hset(GREEKS_LATEST_KEY, mapping=result.mapping())

    def compute(self, batch: TickBatch) -> FrameGreeks:
        """The per-frame CPU work alone, without Redis (benchmarks); after ``ensure_table``."""
        return self._greeks(self._view(batch))

    async def ensure_table(self) -> InstrumentTable:
        """The table to use now: loaded on the first call, swapped once a background reload is done."""
        if self._table is None:
            self._load_started_at = self._monotonic()
            self._install(await self._load_table())
        elif self._reload is not None and self._reload.done():
            reload, self._reload = self._reload, None
            try:
                table = reload.result()
            except DatabaseError:
                # Only the new tokens wait: the next unknown token retries after the interval.
                logger.warning(
                    "greeks: instrument table reload failed; keeping the loaded one", exc_info=True
                )
            else:
                self._install(table)
        return self._loaded()

    def _install(self, table: InstrumentTable) -> None:
        old = self._table
        self._board = PriceBoard.empty(len(table)) if old is None else self._board.remapped(old, table)
        self._table = table

    def _reload_if_unknown(self, view: FrameView) -> None:
        if view.known.all() or self._reload is not None:
            return
        if self._monotonic() - self._load_started_at < self._refresh_interval_s:
            return
        self._load_started_at = self._monotonic()
        self._reload = asyncio.get_running_loop().create_task(self._load_table())

    def _loaded(self) -> InstrumentTable:
        if self._table is None:
            raise RuntimeError("the instrument table is not loaded yet")
        return self._table

    def _view(self, batch: TickBatch) -> FrameView:
        self._exchange_clock.observe(batch.ticks["exchange_timestamp"])
        now = self._exchange_clock.now(fallback=batch.received_at)
        return frame_view(self._loaded(), self._board, batch.ticks, now)

    def _greeks(self, view: FrameView) -> FrameGreeks:
        return frame_greeks(
            self._loaded(),
            self._board,
            view,
            rate=self.rate,
            model=self.model,
            solve=self._solve,
            computed_at=self._wall_clock(),
        )

    async def _fetch_missing_sources(self, view: FrameView) -> None:
        """Futures and indexes this feed has no fresh price for, from the fleet-wide latest-tick cache."""
        if self._monotonic() - self._remote_at < self._remote_interval_s:
            return
        missing = sources_missing(self._loaded(), self._board, view.chains, view.now)
        if missing.size == 0:
            return
        self._remote_at = self._monotonic()
        table = self._loaded()
        raw = await self._redis.hmget(LATEST_KEY, table.tokens[missing].tolist())
        found = [blob for blob in raw if blob is not None]
        if not found:
            return
        ticks = np.frombuffer(b"".join(found), dtype=TICK_DTYPE)
        rows, known = table.lookup(ticks["instrument_token"])
        # Unstamped (ltp-mode) rows get time 0: too old to be a source, since their age is unknown.
        at = priced_at(ticks, ticks["exchange_timestamp"].astype(np.float64))
        self._board.update(rows[known], ticks["last_price"][known], at[known])
