"""The per-frame hot path: record, decode once, hand one batch to every publish hook.

Hooks (the latest-tick cache now; greeks, bars and the dashboard fan-out later) receive the
whole decoded frame, so each does one Redis round trip / one numpy call per frame, never per tick.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ticks.feeds import metrics
from ticks.feeds.protocol import FrameError, decode_frame
from ticks.feeds.recording import FrameRecorder

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickBatch:
    account: str
    ticks: npt.NDArray[np.void]  # ticks.feeds.protocol.TICK_DTYPE rows
    received_at: float
    # What one hook computed for this frame and a later hook reuses (e.g. "greeks" for the fan-out).
    derived: dict[str, Any] = field(default_factory=dict)


class FrameHook(Protocol):
    async def __call__(self, batch: TickBatch) -> None: ...


class FrameProcessor:
    """Called by a connection for every binary frame of one account."""

    def __init__(
        self, account: str, hooks: Sequence[FrameHook], recorder: FrameRecorder | None = None
    ) -> None:
        self.account = account
        self._hooks = tuple(hooks)
        self._recorder = recorder
        self._frames = metrics.FRAMES.labels(account)
        self._ticks = metrics.TICKS.labels(account)
        self._errors = metrics.DECODE_ERRORS.labels(account)
        self._lag = metrics.PUBLISH_LAG.labels(account)

    async def __call__(self, payload: bytes, received_at: float) -> None:
        if self._recorder is not None:
            self._recorder.write(received_at, payload)
        self._frames.inc()
        try:
            ticks = decode_frame(payload)
        except FrameError as error:
            self._errors.inc()
            logger.warning("%s: dropped a malformed frame of %d bytes: %s", self.account, len(payload), error)
            return
        if len(ticks) == 0:
            return  # heartbeat
        self._ticks.inc(len(ticks))
        batch = TickBatch(self.account, ticks, received_at)
        for hook in self._hooks:
            await hook(batch)
        self._observe_lag(ticks)

    def _observe_lag(self, ticks: npt.NDArray[np.void]) -> None:
        stamped = ticks["exchange_timestamp"]
        newest = int(stamped.max()) if len(stamped) else 0
        if newest > 0:
            self._lag.observe(max(0.0, time.time() - newest))
