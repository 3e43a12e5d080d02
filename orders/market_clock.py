""" "Now" for market-hours and expiry checks, chosen by ``ORDER_MARKET_CLOCK``.

* ``wall``: the host's clock (production: Kite's sessions follow IST wall time).
* ``kitesim``: kitesim's simulated exchange clock, read from ``{KITE_ROOT}/_sim/state`` and
  extrapolated at its speed between reads, so dev and demo runs trade at any hour.
* an ISO-8601 datetime with an offset: a frozen clock (tests).
"""

import threading
import time
from datetime import UTC, datetime

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
    mode = settings.ORDER_MARKET_CLOCK
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
            f"ORDER_MARKET_CLOCK must be wall, kitesim or an ISO datetime, got {mode!r}"
        ) from None
    if frozen.tzinfo is None:
        raise ImproperlyConfigured(f"ORDER_MARKET_CLOCK needs a UTC offset, got {mode!r}")
    return frozen
