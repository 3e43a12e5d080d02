"""The tick-path hook for live 1-minute bars: after greeks, before the fan-out.

Per frame: one ``MinuteBars.update`` over the account's primary tokens (set on every plan apply by
the feed); the forming bars of the frame's tokens are left in ``batch.derived["bars"]`` for the
fan-out, and the bars the frame closed are queued for a background writer. The writer calls
``bars_upsert`` once per batch (so about once per account per minute: every bar closes in the frame
that crosses the minute) in Django's sync thread; frames never wait for it. While a write runs,
newly closed bars queue behind it; a write that fails is logged and counted and its bars stay queued
for the next attempt, so nothing accepted is lost while the feed lives.

Quiet periods: a frame-less market (the close, a stall) would leave bars open, so a background loop
closes the minutes the market has left: the newest exchange time plus the time since it arrived (a
monotonic clock, never the wall clock), less ``grace_s`` for ticks still in flight.

What is written: complete closed bars. A token's first minute (the aggregator joined it mid-minute)
is marked partial and left to Kite's candles (gap fill, settlement), because a stored partial bar
would look complete. On stop the closed bars get one more write; the forming bars are not written,
for the same reason: a missing minute is found and filled, a partial one is not.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import numpy as np
from channels.db import database_sync_to_async
from django import db

from ticks.bars import metrics
from ticks.bars.aggregator import BarArray, MinuteBars, bar_records
from ticks.bars.records import BarRecord
from ticks.bars.services import bars_upsert
from ticks.feeds.pipeline import TickBatch
from ticks.market_time import in_session

logger = logging.getLogger(__name__)

QUIET_CHECK_S = 1.0
QUIET_GRACE_S = 5.0
RETRY_S = 5.0
STOP_WRITE_S = 15.0

# Bars accepted but not yet written, at most: about 18 minutes of a full fleet's 27,000 bars. Past it
# (the database down that long) the oldest are dropped and counted; bars.fill_gaps brings them from Kite.
MAX_PENDING_BARS = 500_000

BarsWriter = Callable[[list[BarRecord]], Awaitable[object]]


def _upsert_sync(records: list[BarRecord]) -> int:
    return bars_upsert(records=records)


async def _upsert(records: list[BarRecord]) -> int:
    # Channels' wrapper drops an unusable or expired connection before and after, as a request would:
    # a feed is one long task, so Django's own per-request cleanup never runs for it.
    return await database_sync_to_async(_upsert_sync)(records)


class BarsHook:
    """A FrameProcessor hook; ``write`` defaults to ``bars_upsert`` in Django's sync thread."""

    def __init__(
        self,
        account: str,
        *,
        write: BarsWriter = _upsert,
        quiet_check_s: float = QUIET_CHECK_S,
        grace_s: float = QUIET_GRACE_S,
        retry_s: float = RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self.aggregator = MinuteBars()
        self._write = write
        self._quiet_check_s = quiet_check_s
        self._grace_s = grace_s
        self._retry_s = retry_s
        self._monotonic = monotonic
        self._primary = np.empty(0, np.int64)
        self._pending: list[BarArray] = []
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._market_at = (0, 0.0)  # (newest exchange time of a frame, monotonic time it came)
        self._closed = metrics.BARS_CLOSED.labels(account)
        self._late = metrics.LATE_TICKS.labels(account)
        self._seconds = metrics.WRITE_SECONDS.labels(account)
        self._frame_seconds = metrics.FRAME_SECONDS.labels(account)
        self._failures = metrics.WRITE_FAILURES.labels(account)
        self._dropped = metrics.WRITE_DROPPED.labels(account)

    def set_primary(self, tokens: Iterable[int]) -> None:
        """The tokens whose ticks make bars: the account's primary copies in the plan in force."""
        self._primary = np.unique(np.fromiter(tokens, np.int64))

    @property
    def pending(self) -> int:
        """Closed bars accepted and not yet written."""
        return sum(bars.size for bars in self._pending)

    async def __call__(self, batch: TickBatch) -> None:
        newest = int(batch.ticks["exchange_timestamp"].max()) if batch.ticks.size else 0
        if newest > self._market_at[0]:
            self._market_at = (newest, self._monotonic())
        started = time.perf_counter()
        result = self.aggregator.update(batch.ticks, self._primary)
        self._frame_seconds.observe(time.perf_counter() - started)
        if result.late:
            self._late.inc(result.late)
        forming = result.forming[in_session(result.forming["start"])]
        if forming.size:
            batch.derived["bars"] = forming  # the stream fan-out publishes these
        self._accept(result.closed)
        if self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._close_quiet_minutes())
            self._closer.add_done_callback(self._report_failure)

    def close_quiet(self) -> None:
        """Close the bars of minutes the market has left though no frame has said so yet."""
        newest, arrived = self._market_at
        if newest > 0:
            self._accept(self.aggregator.close_before(newest + self._monotonic() - arrived - self._grace_s))

    async def aclose(self, timeout: float = STOP_WRITE_S) -> None:
        """At feed stop: close what the market has left, write the closed bars (waiting at most
        ``timeout``); the forming bars are dropped (see the module docstring)."""
        if self._closer is not None:
            self._closer.cancel()
        self.close_quiet()
        writer = self._writer
        if writer is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(writer), timeout)
        except TimeoutError:
            writer.cancel()
            logger.error("%s: feed stopping with %d closed bars unwritten", self.account, self.pending)

    def _accept(self, closed: BarArray) -> None:
        if closed.size == 0:
            return
        self._closed.inc(closed.size)
        # Pre-open (09:00-09:08) and post-close ticks make no bar: Kite's candles are the session's.
        complete = closed[~closed["partial"] & in_session(closed["start"])]
        if complete.size == 0:
            return
        self._pending.append(complete)
        self._drop_beyond_cap()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())
            self._writer.add_done_callback(self._report_failure)

    def _drop_beyond_cap(self) -> None:
        while self.pending > MAX_PENDING_BARS and len(self._pending) > 1:
            dropped = self._pending.pop(0)
            self._dropped.inc(dropped.size)
            logger.error(
                "%s: %d closed bars unwritten past the cap of %d: dropped the oldest %d (minutes %s..%s); "
                "bars.fill_gaps fetches them from Kite",
                self.account, self.pending + dropped.size, MAX_PENDING_BARS, dropped.size,
                int(dropped["start"].min()), int(dropped["start"].max()),
            )  # fmt: skip

    async def _write_pending(self) -> None:
        while self._pending:
            bars = np.concatenate(self._pending)
            self._pending.clear()
            written = False
            try:
                started = self._monotonic()
                # 27,000 records a minute: built off the event loop, like the write itself.
                await self._write(await asyncio.to_thread(bar_records, bars))
                self._seconds.observe(self._monotonic() - started)
                written = True
            except db.Error:  # any database failure (InterfaceError is not a DatabaseError)
                self._failures.inc()
                logger.warning(
                    "%s: writing %d closed bars (minutes %s..%s) failed; retrying in %.0f s",
                    self.account,
                    bars.size,
                    int(bars["start"].min()),
                    int(bars["start"].max()),
                    self._retry_s,
                    exc_info=True,
                )
            finally:
                if not written:
                    self._pending.insert(0, bars)  # kept, ahead of what closed meanwhile
            if not written:
                await asyncio.sleep(self._retry_s)

    async def _close_quiet_minutes(self) -> None:
        while True:
            await asyncio.sleep(self._quiet_check_s)
            self.close_quiet()

    def _report_failure(self, task: asyncio.Task[None]) -> None:
        """A bug in the writer or the closer: logged and counted; the next closed bars restart the
        writer, and the queued bars are still there."""
        if not task.cancelled() and task.exception() is not None:
            self._failures.inc()
            logger.error("%s: bars background task failed", self.account, exc_info=task.exception())
