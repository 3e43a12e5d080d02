"""``make test-clock``: the tests that read a clock, run with the host clock moved to where this domain breaks.

Each instant runs ``pytest -m clock`` in a process whose clock libfaketime (Debian's ``faketime``
package) moves: ``LD_PRELOAD`` and ``FAKETIME`` are inherited, so kitesim threads, uvicorn, Celery
workers and every other process a test starts see the same moved clock. The offset is relative
("now minus N seconds"), not an absolute start, so processes started later in a run agree with the
first one instead of each starting again at the instant. The run starts at the instant and crosses
it as the tests go (09:14:59 becomes 09:15 a second in), which is the point.

Usage: ``python scripts/test_clock.py [NAME ...] [-- PYTEST ARGS]``; with no names, every instant.
"""

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
ROOT = Path(__file__).resolve().parent.parent

# Where Indian market code breaks (all IST). 2026-12-08 is a Tuesday: NIFTY's weekly expiry.
# 2026-12-31 (Thursday) is the last trading day of the month and the year, and SENSEX's expiry.
INSTANTS = {
    "saturday": "2026-12-05T12:00:00+05:30",
    "sunday": "2026-12-06T20:00:00+05:30",
    "monday-09:14:59": "2026-12-07T09:14:59+05:30",
    "monday-09:15:00": "2026-12-07T09:15:00+05:30",
    "expiry-15:29:59": "2026-12-08T15:29:59+05:30",
    "expiry-15:30:01": "2026-12-08T15:30:01+05:30",
    "token-05:59:59": "2026-12-09T05:59:59+05:30",
    "token-06:00:01": "2026-12-09T06:00:01+05:30",
    "ist-23:59:59": "2026-12-09T23:59:59+05:30",
    "year-end-close": "2026-12-31T15:29:59+05:30",
    "year-end-23:59:59": "2026-12-31T23:59:59+05:30",
}


def faked_env(instant: datetime) -> dict[str, str]:
    offset = instant.timestamp() - time.time()
    return {
        **os.environ,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": f"{offset:+.3f}",
        "FAKETIME_NO_CACHE": "1",
    }


def check_faketime() -> None:
    """Fail loudly when libfaketime is missing or does not move a child's clock."""
    if not LIBFAKETIME.exists():
        sys.exit(f"{LIBFAKETIME} is missing: install Debian's faketime package (apt-get install faketime)")
    instant = datetime.fromisoformat(INSTANTS["saturday"])
    probe = [sys.executable, "-c", "import time; print(time.time())"]
    child = subprocess.run(probe, env=faked_env(instant), capture_output=True, text=True, check=True)  # noqa: S603
    seen = float(child.stdout)
    if abs(seen - instant.timestamp()) > 30:
        sys.exit(f"libfaketime did not move the clock: a child saw {seen}, wanted {instant.timestamp()}")


def run(name: str, pytest_args: list[str]) -> int:
    instant = datetime.fromisoformat(INSTANTS[name])
    print(f"== test-clock {name}: host clock at {instant.isoformat()}", flush=True)
    command = [sys.executable, "-m", "pytest", "-m", "clock", "-q", "-p", "no:cacheprovider", *pytest_args]
    return subprocess.run(command, env=faked_env(instant), cwd=ROOT, check=False).returncode  # noqa: S603 - our pytest


def main(argv: list[str]) -> int:
    names, pytest_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    unknown = [name for name in names if name not in INSTANTS]
    if unknown:
        sys.exit(f"unknown instant(s) {unknown}; choose from {list(INSTANTS)}")
    check_faketime()
    started = time.monotonic()
    failed = [name for name in names or list(INSTANTS) if run(name, pytest_args) != 0]
    print(
        f"== test-clock: {len(names or INSTANTS) - len(failed)} instants passed, failed: {failed or 'none'} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
