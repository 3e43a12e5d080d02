"""Kite's per-api_key rate limits as sliding windows over the host's monotonic clock.

Kite's limits are wall-clock, so they run on host time even when the simulated clock is fast.
"""

import bisect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float


KITE_LIMITS: Mapping[str, tuple[Window, ...]] = {
    "quote": (Window(1, 1.0),),
    "historical": (Window(3, 1.0),),
    "order": (Window(10, 1.0), Window(400, 60.0), Window(5000, 86_400.0)),
    "default": (Window(10, 1.0),),
}


class RateLimiter:
    """``allow(api_key, bucket)`` counts the request and says whether it is within every window."""

    def __init__(
        self,
        limits: Mapping[str, tuple[Window, ...]] = KITE_LIMITS,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._limits = limits
        self._monotonic = monotonic
        self._seen: dict[tuple[str, str], list[float]] = {}

    def allow(self, api_key: str, bucket: str) -> bool:
        windows = self._limits[bucket]
        now = self._monotonic()
        times = self._seen.setdefault((api_key, bucket), [])
        horizon = max(window.seconds for window in windows)
        del times[: bisect.bisect_right(times, now - horizon)]
        for window in windows:
            recent = len(times) - bisect.bisect_right(times, now - window.seconds)
            if recent >= window.limit:
                return False
        times.append(now)
        return True
