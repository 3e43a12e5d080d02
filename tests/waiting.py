"""Polling for conditions that real processes (workers, kitesim, Redis) make true eventually."""

import time
from collections.abc import Callable


def until(
    check: Callable[[], object], timeout: float = 30.0, every: Callable[[], object] | None = None
) -> None:
    """Poll ``check`` every 0.25 s (calling ``every`` between polls) until it is truthy, or fail."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        if every is not None:
            every()
        time.sleep(0.25)
