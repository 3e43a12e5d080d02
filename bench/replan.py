"""A fleet re-plan end to end, as ``feeds.rebalance`` runs it: the real Aug-2026 dump in the database,
every F&O underlying watched, ten broker accounts.

Loads bench/data's dump (39,941 instruments) into a bench SQLite file (or a new database on
``--database-url``'s PostgreSQL server, dropped after), enables a WatchSpec per underlying (ATM ± 13
and the margin, nearest 3 expiries: about 30,000 tokens), seeds every price token's last price in
Redis database 12 (BENCH_REDIS_URL, flushed), freezes the market clock on 2026-08-17 10:00 IST and
times ``workers.services.feed_plan_refresh``:

1. nothing moved (the backstop's usual case: the plan is compared, nothing is stored);
2. one underlying moved a strike (a tick-driven re-plan: its rows are retired and placed);
3. every underlying moved (the worst case: most of the fleet's rows change).

The indices' spot rows are not in the NFO/BFO dump, so NIFTY, BANKNIFTY and SENSEX are reported
unpriced; the ~215 others are priced by their nearest future.

    .venv/bin/python bench/replan.py [--rounds 20] [--database-url postgres://postgres@127.0.0.1:5432/test]
"""

import argparse
import gzip
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DUMP = ROOT / "bench" / "data" / "kite-instruments-nfo-bfo-2026-08.csv.gz"
WORKDIR = ROOT / "var" / f"bench-replan-{os.getpid()}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
MARKET_OPEN = datetime.fromisoformat("2026-08-17T10:00:00+05:30")
BENCH_DATABASE = f"bench_replan_{os.getpid()}"
ACCOUNTS, STRIKES, EXPIRIES = 10, 13, 3


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--database-url", help="a PostgreSQL server: the bench makes a database there and drops it"
    )
    return parser.parse_args()


ARGS = _arguments()
WORKDIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = (
    urlsplit(ARGS.database_url)._replace(path=f"/{BENCH_DATABASE}").geturl()
    if ARGS.database_url
    else f"sqlite:///{WORKDIR / 'db.sqlite3'}"
)
os.environ.update(
    DJANGO_SETTINGS_MODULE="tickerproject.settings.base",
    DATABASE_URL=DATABASE_URL,
    REDIS_URL=REDIS_URL,
    MARKET_CLOCK=MARKET_OPEN.isoformat(),
    LOG_LEVEL="WARNING",
)
if ARGS.database_url:
    with psycopg.connect(ARGS.database_url, autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from ticks.feeds.latest import LATEST_KEY  # noqa: E402
from ticks.feeds.protocol import TICK_DTYPE  # noqa: E402
from ticks.instruments_csv import parse_csv  # noqa: E402
from ticks.models import BrokerAccount, WatchSpec  # noqa: E402
from ticks.services import instruments_load  # noqa: E402
from workers.listing import listing_current  # noqa: E402
from workers.models import FeedAssignment  # noqa: E402
from workers.services import feed_plan_refresh, redis_client  # noqa: E402


def _prepare() -> dict[int, float]:
    call_command("migrate", verbosity=0)
    redis_client().flushdb()
    parsed = parse_csv(gzip.decompress(DUMP.read_bytes()).decode())
    instruments_load(rows=parsed.rows, errors=parsed.errors)
    for n in range(ACCOUNTS):
        BrokerAccount.objects.create(name=f"bench{n}", api_key=f"bench{n}", api_secret="secret")
    call_command(
        "watchlist_fno",
        strikes=STRIKES,
        expiries=EXPIRIES,
        enable=True,
        verbosity=0,
        stdout=StringIO(),
    )
    listing = listing_current()
    prices = {}
    for spec in WatchSpec.objects.all():
        source = listing.price_source(spec.underlying, MARKET_OPEN)
        if source is not None:
            chain = listing.chain(spec.underlying)
            strikes = chain.strikes(chain.expiries(MARKET_OPEN)[0])
            prices[source[0]] = strikes[len(strikes) // 2]
    _prices_set(prices)
    return prices


def _prices_set(prices: dict[int, float]) -> None:
    rows = np.zeros(len(prices), TICK_DTYPE)
    rows["instrument_token"] = list(prices)
    rows["last_price"] = list(prices.values())
    size = TICK_DTYPE.itemsize
    raw = rows.tobytes()
    redis_client().hset(LATEST_KEY, mapping={t: raw[i * size : (i + 1) * size] for i, t in enumerate(prices)})


def _clock_forward() -> None:
    """Past the ATM cooldown (5 s of market time) for the next round."""
    settings.MARKET_CLOCK = (
        datetime.fromisoformat(settings.MARKET_CLOCK) + timedelta(seconds=30)
    ).isoformat()


def _timed(rounds: int, move: Callable[[int], None]) -> tuple[list[float], list[int]]:
    seconds, written = [], []
    client = redis_client()
    for round_ in range(rounds):
        move(round_)
        _clock_forward()
        before = FeedAssignment.objects.count()
        started = time.perf_counter()
        feed_plan_refresh(client=client, reason="bench")
        seconds.append(time.perf_counter() - started)
        written.append(FeedAssignment.objects.count() - before)
    return seconds, written


def _print(name: str, seconds: list[float]) -> None:
    ms = np.array(seconds) * 1000
    p50, p99 = np.percentile(ms, [50, 99])
    print(f"  {name}: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {ms.max():.0f} ms ({len(ms)} rounds)")


def main() -> None:
    started = time.perf_counter()
    prices = _prepare()
    first = feed_plan_refresh(client=redis_client(), reason="bench")
    tokens = list(prices)
    print(
        f"{DATABASE_URL.split(':')[0]}: {WatchSpec.objects.count()} specs, {len(prices)} priced, {ACCOUNTS} accounts; "
        f"plan v{first.version}: {first.assignments.count():,} rows in force, {len(first.errors)} errors "
        f"(set up in {time.perf_counter() - started:.0f} s)"
    )

    def still(_: int) -> None:
        pass

    def one(round_: int) -> None:
        token = tokens[round_ % len(tokens)]
        prices[token] *= 1.02 if round_ % 2 == 0 else 1 / 1.02
        _prices_set({token: prices[token]})

    def every(round_: int) -> None:
        for token in tokens:
            prices[token] *= 1.02 if round_ % 2 == 0 else 1 / 1.02
        _prices_set(prices)

    unchanged, _ = _timed(ARGS.rounds, still)
    single, single_rows = _timed(ARGS.rounds, one)
    fleet, fleet_rows = _timed(max(3, ARGS.rounds // 4), every)
    _print("(1) nothing moved", unchanged)
    _print(f"(2) one underlying moved (median {int(np.median(single_rows))} rows placed)", single)
    _print(f"(3) every underlying moved (median {int(np.median(fleet_rows)):,} rows placed)", fleet)
    p99 = float(np.percentile(single, 99))
    print(
        f"  target: a tick-driven re-plan (2) p99 < 1 s of the crossing budget: {p99:.2f} s, "
        f"{'met' if p99 < 1 else 'MISSED'} (ratio {p99:.2f})"
    )
    connections.close_all()


if __name__ == "__main__":
    try:
        main()
    finally:
        if ARGS.database_url:
            connections.close_all()
            with psycopg.connect(ARGS.database_url, autocommit=True) as server:
                server.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
