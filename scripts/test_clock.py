"""``make test-clock``: the tests that read a clock, run with the host clock moved to where this domain breaks.

Each instant runs ``pytest -m clock`` in a process whose clock libfaketime (Debian's ``faketime``
package) moves: ``LD_PRELOAD`` and ``FAKETIME`` are inherited, so kitesim threads, uvicorn, Celery
workers and every other process a test starts see the same moved clock. The offset is relative
("now minus N seconds"), not an absolute start, so processes started later in a run agree with the
first one instead of each starting again at the instant. The run starts at the instant and crosses
it as the tests go (09:14:59 becomes 09:15 a second in), which is the point.

Instants run three at a time (``TEST_CLOCK_JOBS``), each in a Redis database of its own; the test
settings already give each run its own SQLite file, channel-layer prefix and feed control channel.
The marked tests are found once, on the real clock, and each instant is given only their files: it
then imports those instead of the whole suite (collecting everything cost ~7 s an instant).

Usage: ``python scripts/test_clock.py [--help | NAME ...] [-- PYTEST ARGS]``; with no names, every instant.
"""

import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
ROOT = Path(__file__).resolve().parent.parent
# Instants run TEST_CLOCK_JOBS (3) at a time, each in its own Redis database (the suite's own is 15);
# TEST_CLOCK_REDIS_DBS ("7" or "7,8,9") picks others, e.g. beside another run on a shared machine.
REDIS_BASE = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
REDIS_DBS = [int(db) for db in os.environ.get("TEST_CLOCK_REDIS_DBS", "14,13,12,11").split(",")]
PYTEST = ["-m", "clock", "-q", "-p", "no:cacheprovider"]

# Where Indian market code breaks (all IST). 2026-12-08 is a Tuesday: NIFTY's weekly expiry.
# 2026-12-25 (Friday) is Christmas, an exchange holiday: the market stays closed on a weekday.
# 2026-12-31 (Thursday) is the last trading day of the month and the year, and SENSEX's expiry.
# 2027-01-04 (Monday) is past the last year exchange-calendars lists holidays for: weekdays are taken
# as sessions, with a warning and market_calendar_beyond_known_total counting.
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
    "holiday": "2026-12-25T10:00:00+05:30",
    "year-end-close": "2026-12-31T15:29:59+05:30",
    "year-end-23:59:59": "2026-12-31T23:59:59+05:30",
    "new-year": "2027-01-04T09:20:00+05:30",
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


def clock_test_files(pytest_args: list[str]) -> list[str]:
    """The files that hold a test marked ``clock`` (with the caller's pytest arguments applied)."""
    command = [sys.executable, "-m", "pytest", *PYTEST, "--collect-only", *pytest_args]
    done = subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True)  # noqa: S603
    files = sorted({line.split("::", 1)[0] for line in done.stdout.splitlines() if "::" in line})
    if done.returncode != 0 or not files:
        sys.exit(
            f"collecting the clock-marked tests failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return files


def run(name: str, pytest_args: list[str], redis_db: int) -> tuple[int, str]:
    """One instant's pytest in its own Redis database (instants run side by side); its output, whole."""
    instant = datetime.fromisoformat(INSTANTS[name])
    env = {**faked_env(instant), "TEST_REDIS_URL": f"{REDIS_BASE}/{redis_db}"}
    command = [sys.executable, "-m", "pytest", *PYTEST, *pytest_args]
    done = subprocess.run(command, env=env, cwd=ROOT, check=False, capture_output=True, text=True)  # noqa: S603
    return (
        done.returncode,
        f"== test-clock {name}: host clock at {instant.isoformat()}\n{done.stdout}{done.stderr}",
    )


def run_all(names: list[str], pytest_args: list[str], jobs: int) -> list[str]:
    """Run the instants, ``jobs`` at a time, each in a free Redis database; returns the failed names."""
    free: queue.Queue[int] = queue.Queue()
    for db in REDIS_DBS[:jobs]:
        free.put(db)

    def one(name: str) -> tuple[str, int]:
        db = free.get()
        try:
            code, output = run(name, pytest_args, db)
        finally:
            free.put(db)
        print(output, flush=True)
        return name, code

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return [name for name, code in pool.map(one, names) if code != 0]


def main(argv: list[str]) -> int:
    names, pytest_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    if {"-h", "--help"} & set(names):
        print(__doc__, "Instants:", *(f"  {name}: {instant}" for name, instant in INSTANTS.items()), sep="\n")
        return 0
    unknown = [name for name in names if name not in INSTANTS]
    if unknown:
        sys.exit(f"unknown instant(s) {unknown}; choose from {list(INSTANTS)}")
    check_faketime()
    started = time.monotonic()
    names = names or list(INSTANTS)
    files = clock_test_files(pytest_args)
    jobs = min(int(os.environ.get("TEST_CLOCK_JOBS", "3")), len(REDIS_DBS))
    failed = run_all(names, [*files, *pytest_args], jobs)
    print(
        f"== test-clock: {len(names) - len(failed)} of {len(names)} instants passed, failed: {failed or 'none'} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
