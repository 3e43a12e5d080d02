"""The web's ASGI application with cProfile behind two signals, for ``bench/fanout.py --profile``.

SIGUSR1 starts profiling the worker's main thread (its event loop: everything the stream does runs
there), SIGUSR2 stops it and writes the statistics to ``$BENCH_PROFILE_DIR/profile-<pid>.pstats``.
The bench sends them at the edges of a measuring window, so the profile is the steady state and not
the clients' connects and snapshots. The timer is the thread's CPU time, not the wall clock: on a
machine that other work keeps busy, wall time would charge a function for the time the process
waited for a core. cProfile adds its own cost per call (the figures of a profiled round are not the
bench's figures), but the shares show where the time goes; it needs nothing outside the standard
library.
"""

import cProfile
import os
import signal
import time
from pathlib import Path
from types import FrameType

from tickerproject.asgi import application

__all__ = ["application"]

_profiler: cProfile.Profile | None = None


def _start(signum: int, frame: FrameType | None) -> None:
    global _profiler
    _profiler = cProfile.Profile(time.thread_time)
    _profiler.enable()


def _stop(signum: int, frame: FrameType | None) -> None:
    global _profiler
    if _profiler is None:
        return
    _profiler.disable()
    _profiler.dump_stats(Path(os.environ["BENCH_PROFILE_DIR"]) / f"profile-{os.getpid()}.pstats")
    _profiler = None


signal.signal(signal.SIGUSR1, _start)
signal.signal(signal.SIGUSR2, _stop)
