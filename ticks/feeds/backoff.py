"""Reconnect delays: exponential, capped, with full jitter (so a fleet does not reconnect in step)."""

import random
from collections.abc import Iterator


def backoff_delays(*, base_s: float, cap_s: float, rng: random.Random) -> Iterator[float]:
    """Delay before attempt n: uniform(0, min(cap, base * 2**n))."""
    attempt = 0
    while True:
        yield rng.uniform(0, min(cap_s, base_s * 2**attempt))
        attempt = min(attempt + 1, 30)
