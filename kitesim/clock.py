"""The simulated exchange clock: epoch seconds that run ``speed`` times faster than the host's."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30), "IST")


@dataclass
class SimClock:
    start_epoch: float
    speed: float = 1.0
    monotonic: Callable[[], float] = time.monotonic
    _t0: float = field(init=False)
    _offset: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        self._t0 = self.monotonic()

    def now(self) -> float:
        """Simulated epoch seconds (UTC based)."""
        return self.start_epoch + self._offset + (self.monotonic() - self._t0) * self.speed

    def now_ist(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=IST)

    def jump(self, seconds: float) -> None:
        """Move simulated time forward (tests, skipping the closed market)."""
        if seconds < 0:
            raise ValueError("the clock never runs backwards")
        self._offset += seconds
