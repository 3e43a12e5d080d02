"""Bars history: pandas resampling of a year of 1-minute bars, and GET /api/v1/bars over a real server.

Parts (c) and (d) of bench/bars.py, which runs this file as a child process per database (Django binds
one database per process, and this one sets up its own).

1. resample: one token's year of 1-minute bars (250 sessions x 375 minutes) to every Kite interval with
   ticks.bars.resample (pure: no database), median of 5 runs; target < 1 s for all intervals together.
   For scale, also the whole read a year of 60-minute bars costs the API (one query, frame, resample).
2. api: the Procfile's web line (uvicorn, its workers) on a fresh database (SQLite file, or with
   ``--database-url`` a new database on that PostgreSQL server, dropped after); one client asks
   ``GET /api/v1/bars`` for a day of minutes (one page of 375) a few hundred times; p50/p99, target
   p99 < 50 ms. The same day at 15minute and as CSV, for comparison.

    .venv/bin/python bench/bars_history.py [--requests 300] [--database-url postgres://postgres@127.0.0.1:5432/x]
"""

import argparse
import os
import shutil
import socket
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")  # nothing flushes it
WORKDIR = ROOT / "var" / f"bench-bars-{os.getpid()}"
BENCH_DATABASE = f"bench_bars_{os.getpid()}"
SESSIONS, MINUTES = 250, 375


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--database-url", help="a PostgreSQL server: the bench creates a database there, drops it after"
    )
    return parser.parse_args()


ARGS = _arguments()


def _database_url() -> str:
    if ARGS.database_url is None:
        return f"sqlite:///{WORKDIR / 'db.sqlite3'}"
    return urlsplit(ARGS.database_url)._replace(path=f"/{BENCH_DATABASE}").geturl()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


WEB_PORT = _free_port()
WEB_ROOT = f"http://127.0.0.1:{WEB_PORT}"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
    "DJANGO_DEBUG": "false",
    "DATABASE_URL": _database_url(),
    "REDIS_URL": REDIS_URL,
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)
DATABASE = urlsplit(ENV["DATABASE_URL"]).scheme

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.processes import Process, answers  # noqa: E402
from ticks.bars.intervals import INTERVAL_MINUTES  # noqa: E402
from ticks.bars.records import BarRecord  # noqa: E402
from ticks.bars.resample import bars_frame, bars_resample  # noqa: E402
from ticks.bars.selectors import bars_read  # noqa: E402
from ticks.bars.services import bars_upsert  # noqa: E402
from ticks.market_time import IST  # noqa: E402
from ticks.models import ClientApiKey, Instrument  # noqa: E402

TOKEN = 256265
FIRST_DAY = date(2025, 1, 6)  # a Monday; fixed, so every run resamples the same year


def _sessions(count: int) -> list[date]:
    days, day = [], FIRST_DAY
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def year_of_minutes(count: int = SESSIONS) -> tuple[np.ndarray, ...]:
    """(start, open, high, low, close, volume, oi) columns: ``count`` sessions of 375 minutes, a random walk."""
    opens = np.array(
        [datetime(d.year, d.month, d.day, 9, 15, tzinfo=IST).timestamp() for d in _sessions(count)]
    )
    starts = (opens[:, None] + 60.0 * np.arange(MINUTES)).ravel()
    rng = np.random.default_rng(7)
    close = 24_000 + np.cumsum(rng.normal(0, 3, starts.size))
    open_ = np.concatenate([[24_000.0], close[:-1]])
    high = np.maximum(open_, close) + rng.uniform(0, 2, starts.size)
    low = np.minimum(open_, close) - rng.uniform(0, 2, starts.size)
    volume = rng.integers(0, 10_000, starts.size)
    oi = 10_000_000 + np.cumsum(rng.integers(-500, 600, starts.size))
    return starts, open_, high, low, close, volume, oi


def bench_resample() -> None:
    minutes = bars_frame(*year_of_minutes())
    runs: list[dict[str, float]] = []
    for _ in range(5):
        timing = {}
        for interval in INTERVAL_MINUTES:
            started = time.perf_counter()
            bars_resample(minutes, interval)
            timing[interval] = time.perf_counter() - started
        runs.append(timing)
    totals = [sum(run.values()) for run in runs]
    median = runs[totals.index(statistics.median_low(totals))]
    each = ", ".join(f"{name} {1000 * seconds:.1f}" for name, seconds in median.items() if name != "minute")
    print(f"resample    {len(minutes):,} 1-minute bars (one token, {SESSIONS} sessions) to every interval: "
          f"{1000 * statistics.median(totals):.0f} ms total (median of 5; target < 1000 ms)")  # fmt: skip
    print(f"            ms per interval: {each}")


def store_year() -> None:
    columns = year_of_minutes()
    records = [
        BarRecord(TOKEN, "minute", *row[:5], int(row[5]), int(row[6]), source="kite")
        for row in zip(*columns, strict=True)
    ]
    started = time.perf_counter()
    bars_upsert(records=records)
    stored = time.perf_counter() - started
    first = datetime.fromtimestamp(columns[0][0], IST)
    end = first + timedelta(days=365)
    reads = []
    for _ in range(3):
        started = time.perf_counter()
        bars = bars_read(instrument_token=TOKEN, interval="60minute", start=first, end=end)
        reads.append(time.perf_counter() - started)
    connections.close_all()
    print(f"read        a year of 60-minute bars through bars_read ({DATABASE}: one query of {len(records):,} "
          f"minutes, frame, resample to {len(bars):,} bars): {1000 * statistics.median(reads):.0f} ms "
          f"(median of 3; stored in {stored:.1f} s)")  # fmt: skip


# --- the web process ------------------------------------------------------------------------------


PROCFILE_WEB = next(
    line.removeprefix("web:").strip()
    for line in (ROOT / "Procfile").read_text().splitlines()
    if line.startswith("web:")
)


def start_web() -> Process:
    env = {**ENV, "WEB_PORT": str(WEB_PORT), "PATH": f"{Path(sys.executable).parent}:{ENV['PATH']}"}
    command = ["bash", "-c", f"exec {PROCFILE_WEB}"]
    return Process("web", command, lambda: answers(f"{WEB_ROOT}/api/v1/bars"), env, WORKDIR)


def prepare_api() -> tuple[str, date]:
    """The index listed, a client key; returns the key and a stored day (the year is already stored)."""
    Instrument.objects.create(
        instrument_token=TOKEN, exchange_token=1001, tradingsymbol="NIFTY 50", name="NIFTY 50",
        last_price=Decimal(0), tick_size=Decimal("0.05"), instrument_type="EQ", segment="INDICES",
        exchange="NSE", loaded_at=timezone.now(),
    )  # fmt: skip
    user = get_user_model().objects.create_user(username="bench-bars")
    key = ClientApiKey.objects.create_key(name="bench", user=user)[1]
    connections.close_all()
    return key, _sessions(SESSIONS)[SESSIONS // 2]


def _ms(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_api(key: str, day: date) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Api-Key {key}"
    start = datetime(day.year, day.month, day.day, tzinfo=IST)
    base = {
        "instrument": "NSE:NIFTY 50",
        "from": start.isoformat(),
        "to": (start + timedelta(seconds=86_399)).isoformat(),
    }
    variants = [
        ("minute, JSON", {"interval": "minute", "limit": 375}, MINUTES),
        ("15minute, JSON", {"interval": "15minute"}, 25),
        ("minute, CSV", {"interval": "minute", "format": "csv"}, MINUTES),
    ]
    for label, extra, bars in variants:
        params = {**base, **extra}
        for _ in range(20):  # warm both workers' connections and caches
            session.get(f"{WEB_ROOT}/api/v1/bars", params=params, timeout=10)
        took = []
        for _ in range(ARGS.requests):
            started = time.perf_counter()
            response = session.get(f"{WEB_ROOT}/api/v1/bars", params=params, timeout=10)
            took.append(time.perf_counter() - started)
            response.raise_for_status()
        counted = (
            response.text.count("\n") - 1 if extra.get("format") == "csv" else len(response.json()["results"])
        )
        assert counted == bars, (label, counted)
        print(f"api         GET /api/v1/bars, a day ({bars} bars) {label:14}: p50 {_ms(took, 0.5):.1f} ms, "
              f"p99 {_ms(took, 0.99):.1f} ms over {ARGS.requests} requests (target p99 < 50 ms)")  # fmt: skip


def main() -> None:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    if ARGS.database_url:
        with psycopg.connect(ARGS.database_url, autocommit=True) as server:
            server.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    web = None
    try:
        print(
            f"bars history bench: {DATABASE} database, web = the Procfile's line; {timezone.localtime():%Y-%m-%d %H:%M %Z}"
        )
        bench_resample()
        call_command("migrate", verbosity=0)
        store_year()
        key, day = prepare_api()
        web = start_web()
        bench_api(key, day)
    finally:
        if web is not None:
            web.stop()
        connections.close_all()
        if ARGS.database_url:
            with psycopg.connect(ARGS.database_url, autocommit=True) as server:
                server.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        shutil.rmtree(WORKDIR, ignore_errors=True)


if __name__ == "__main__":
    main()
