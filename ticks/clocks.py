"""The service's clocks: one place per kind of "now" (DESIGN.md "Market time", README "Clocks").

* **The exchange's clock as the feed carries it** (``ExchangeClock``): the newest exchange timestamp
  of the frames seen. The tick path (greeks' time to expiry, bar buckets) runs on it, so a replayed or
  simulated market is consistent with itself at any host hour.
* **The market clock** (``market_now``) for code with no frame at hand (order market hours and AMO,
  the bar tasks deciding which minutes closed), chosen by ``MARKET_CLOCK``:
  ``wall``: the host's clock (production: Kite's sessions follow IST wall time);
  ``kitesim``: kitesim's simulated exchange clock, read from ``{KITE_ROOT}/_sim/state`` and
  extrapolated at its speed between reads, so dev and demo runs trade at any hour;
  an ISO-8601 datetime with an offset: a frozen clock (tests).
* **The host's clock** (``django.utils.timezone.now``, ``time.time``, ``time.monotonic``) only for
  leases, timeouts, deadlines, rate limits and audit stamps: never to decide what the market is doing.

kitesim's simulated clock (``kitesim.clock.SimClock``) is the simulator's own and stays there.
"""

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

KITESIM_REFRESH_S = 10.0


class _KitesimClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root = ""
        self._sim_epoch = 0.0
        self._speed = 1.0
        self._read_at = float("-inf")

    def now(self) -> datetime:
        with self._lock:
            if self._root != settings.KITE_ROOT or time.monotonic() - self._read_at > KITESIM_REFRESH_S:
                self._read()
            elapsed = time.monotonic() - self._read_at
            return datetime.fromtimestamp(self._sim_epoch + elapsed * self._speed, tz=UTC)

    def _read(self) -> None:
        state = requests.get(f"{settings.KITE_ROOT}/_sim/state", timeout=settings.KITE_HTTP_TIMEOUT).json()
        self._root = settings.KITE_ROOT
        self._sim_epoch = float(state["now"])
        self._speed = float(state["speed"])
        self._read_at = time.monotonic()


_kitesim = _KitesimClock()


def market_now() -> datetime:
    mode = settings.MARKET_CLOCK
    if mode == "wall":
        return timezone.now()
    if mode == "kitesim":
        return _kitesim.now()
    return _frozen(mode)


def check_clock_setting(mode: str) -> None:
    if mode not in ("wall", "kitesim"):
        _frozen(mode)


def _frozen(mode: str) -> datetime:
    try:
        frozen = datetime.fromisoformat(mode)
    except ValueError:
        raise ImproperlyConfigured(
            f"MARKET_CLOCK must be wall, kitesim or an ISO datetime, got {mode!r}"
        ) from None
    if frozen.tzinfo is None:
        raise ImproperlyConfigured(f"MARKET_CLOCK needs a UTC offset, got {mode!r}")
    return frozen


@dataclass(slots=True)
class ExchangeClock:
    """The exchange's clock as one feed's frames carry it: the newest exchange timestamp seen.

    ltp-mode ticks and heartbeats carry no timestamp; a frame without one leaves the clock where it
    was, and before any stamped frame ``now`` falls back to what the caller passes (the receive time).
    """

    newest: float = 0.0

    def observe(self, exchange_timestamps: npt.NDArray[np.int64]) -> float:
        if exchange_timestamps.size:
            self.newest = max(self.newest, float(exchange_timestamps.max()))
        return self.newest

    def now(self, fallback: float) -> float:
        return self.newest if self.newest > 0 else fallback
