"""Fault injection, set at run time through ``POST /_sim/faults`` or directly by tests.

Counted faults (``*_next``) are consumed one request/frame at a time, so a test can ask
for "the next 3 order placements answer 503" and then see normal service again.
"""

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class FaultPlan:
    # WebSocket
    reject_upgrades_403: bool = False      # every new upgrade answered 403
    reject_upgrades_429: bool = False      # every new upgrade answered 429
    stall_seconds: float = 0.0             # open connections go silent (no ticks, no heartbeat)
    malformed_frames_next: int = 0         # next N binary frames are truncated/garbled
    # REST
    rest_5xx_next: int = 0                 # next N REST requests answer 503 GeneralException
    rest_429_next: int = 0                 # next N REST requests answer 429 NetworkException
    rest_latency_ms: float = 0.0           # added to every REST response
    order_timeout_next: int = 0            # next N order placements are accepted, then never answered

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON body; unknown names or wrong types raise ValueError naming the field."""
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}")
            expected = {bool: bool, int: int, float: (int, float)}[known[name]]
            if isinstance(value, bool) and expected is not bool:
                raise ValueError(f"fault {name!r} must be a number")
            if not isinstance(value, expected):
                raise ValueError(f"fault {name!r} has the wrong type")
            setattr(self, name, value)

    def take(self, name: str) -> bool:
        """Consume one unit of a counted fault; True when it fired."""
        remaining = getattr(self, name)
        if remaining <= 0:
            return False
        setattr(self, name, remaining - 1)
        return True

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
