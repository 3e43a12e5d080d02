"""Bars benchmark: figures printed, with their reference measured in the same run.

(a) The aggregator on the tick path: ``MinuteBars.update`` on a frame of 3,000 full packets (every
    token primary), as a fraction of what the frame already costs (decode + GreeksHook.compute);
    target <= 10 %. Also the fan-out's encoding of the frame's forming bars for the stream.
(b) Closing 27,000 tokens' bars in one minute: ``bar_records`` + one ``bars_upsert`` on SQLite (a
    fresh file) and, with ``--database-url``, on PostgreSQL (that database, created and migrated if
    missing; its bars table is emptied before and after); target < 1 s. Each database runs in a child
    process of this script (Django binds one database per process).
(c) Resampling one year of 1-minute bars of one token to every interval with pandas; target < 1 s.
(d) GET /api/v1/bars for a day of minutes against the Procfile's web line: p50/p99; target p99 < 50 ms.
    (c) and (d) run bench/bars_history.py as a child, on SQLite and, with ``--database-url``, on a fresh
    database of that PostgreSQL server.

Run: .venv/bin/python bench/bars.py [--database-url postgres://postgres@127.0.0.1:5432/helper_live]
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKENS_CLOSED = 27_000
MINUTE0 = 1_796_000_040 // 60 * 60  # a minute start; bars of consecutive minutes follow it


def _median_us(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    call()
    samples = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call()
        samples[i] = time.perf_counter() - start
    return float(np.median(samples) * 1e6), float(np.percentile(samples, 99) * 1e6)


def _greeks_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_greeks", ROOT / "bench" / "greeks.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# --- (a) the aggregator on the tick path ------------------------------------------------------------


def part_aggregator(repeats: int) -> None:
    import asyncio

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tickerproject.settings.test")
    django.setup()
    from greeks import tickpath
    from greeks.hook import GreeksHook
    from kitesim.wire import MODE_FULL, TickColumns, encode_frame
    from ticks.bars.aggregator import MinuteBars
    from ticks.fanout import BarTexts
    from ticks.feeds.pipeline import TickBatch
    from ticks.feeds.protocol import decode_frame

    rows, frame = _greeks_bench()._tick_path_market()  # bench/greeks.py's 3,000-packet frame
    columns = TickColumns.for_tokens(frame["instrument_token"])
    columns.last[:] = frame["last_price"]
    columns.bid_price[:, 0], columns.ask_price[:, 0] = frame["bid_price"][:, 0], frame["ask_price"][:, 0]
    columns.volume[:] = 1_000
    columns.timestamp[:] = frame["exchange_timestamp"]
    payload = encode_frame(columns, {MODE_FULL: np.arange(frame.size)})
    decoded = decode_frame(payload)
    table = tickpath.instrument_table_build(rows)

    async def load() -> tickpath.InstrumentTable:
        return table

    hook = GreeksHook(None, load_table=load, rate=0.065, model="black76", backend="numpy")  # type: ignore[arg-type]
    asyncio.run(hook.ensure_table())
    batch = TickBatch("bench", decoded, float(decoded["exchange_timestamp"][0]))
    primary = np.unique(decoded["instrument_token"])
    bars = MinuteBars()
    moving = decoded.copy()
    step = iter(range(10**9))

    def update() -> object:
        i = next(step)  # 10 frames a second: a new exchange second every 10th, a new minute every 600th
        moving["exchange_timestamp"] = decoded["exchange_timestamp"] + i // 10
        moving["volume_traded"] += 3
        moving["last_price"] = np.round(decoded["last_price"] + (i % 7) * 0.05, 2)  # paise, as on the wire
        return bars.update(moving, primary)

    decode_us, decode_p99 = _median_us(lambda: decode_frame(payload), repeats)
    greeks_us, greeks_p99 = _median_us(lambda: hook.compute(batch), repeats)
    bars_us, bars_p99 = _median_us(update, repeats)
    forming = bars.update(moving, primary).forming
    encoder, some = BarTexts(), forming.copy()
    encoder(some)

    def moved(rows: slice) -> object:  # the bars of these rows moved since the encoder's last frame
        some["close"][rows] = np.round(some["close"][rows] + 0.05, 2)
        return encoder(some)

    texts_us, _ = _median_us(lambda: moved(slice(None)), repeats)
    tenth_us, _ = _median_us(lambda: moved(slice(None, None, 10)), repeats)
    rollover = MinuteBars()
    rollover.update(decoded, primary)
    later = decoded.copy()
    later["exchange_timestamp"] += 60
    start = time.perf_counter()
    closed = rollover.update(later, primary).closed
    rollover_us = (time.perf_counter() - start) * 1e6
    reference = decode_us + greeks_us
    print(
        f"(a) one frame of {decoded.size} full packets, every token primary ({repeats} repeats, median / p99)"
    )
    print(f"    decode_frame                      {decode_us:8,.0f} us / {decode_p99:8,.0f} us")
    print(f"    GreeksHook.compute                {greeks_us:8,.0f} us / {greeks_p99:8,.0f} us")
    print(f"    MinuteBars.update                 {bars_us:8,.0f} us / {bars_p99:8,.0f} us")
    print(f"    -> aggregator / (decode + greeks) = {bars_us / reference:.1%}  (target <= 10 %)")
    print(f"    the frame that closes the minute ({closed.size} bars): {rollover_us:,.0f} us (once a minute)")
    print(f"    fan-out: encoding {forming.size} forming bars for the stream: {texts_us:,.0f} us all moved; "
          f"{tenth_us:,.0f} us when a tenth of them moved")  # fmt: skip


# --- (b) closing 27,000 tokens' bars: the bulk write ------------------------------------------------


def part_write(database_urls: list[str], rounds: int) -> None:
    print(
        f"(b) {TOKENS_CLOSED:,} tokens' bars closed in one minute: bar_records + one bars_upsert ({rounds} minutes)"
    )
    for url in database_urls:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tickerproject.settings.test"}
        command = [sys.executable, __file__, "--write-child", "--rounds", str(rounds)]
        subprocess.run(command, env=env, check=True, cwd=ROOT)  # noqa: S603 - this script, our arguments


def write_child(rounds: int) -> None:
    """In a child process whose DATABASE_URL is the database to measure."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from ticks.bars.aggregator import BAR_DTYPE, bar_records
    from ticks.bars.services import bars_upsert
    from ticks.models import Bar

    call_command("migrate", verbosity=0)
    Bar.objects.all().delete()
    tokens = np.arange(TOKENS_CLOSED, dtype=np.int64) * 256 + 2
    inserts, updates = [], []
    try:
        for minute in range(rounds):
            bars = np.zeros(TOKENS_CLOSED, BAR_DTYPE)
            bars["instrument_token"], bars["start"] = tokens, MINUTE0 + 60 * minute
            bars["open"] = bars["high"] = bars["low"] = bars["close"] = 100.0 + minute
            bars["volume"], bars["ticks"] = 1_500, 60
            start = time.perf_counter()
            bars_upsert(records=bar_records(bars))
            inserts.append(time.perf_counter() - start)
            start = time.perf_counter()
            bars_upsert(records=bar_records(bars))  # the same keys again: every row a conflict
            updates.append(time.perf_counter() - start)
        assert Bar.objects.count() == TOKENS_CLOSED * rounds
    finally:
        Bar.objects.all().delete()
    vendor = connection.vendor
    convert = _median_us(lambda: bar_records(bars), 5)[0] / 1e6
    print(
        f"    {vendor:10s} new minute: median {np.median(inserts):.3f} s (max {max(inserts):.3f}); "
        f"same minute again (all conflicts): median {np.median(updates):.3f} s; "
        f"of which bar_records {convert:.3f} s  (target < 1 s)"
    )


def postgres_ready(url: str) -> None:
    """Create the --database-url database if it is missing (the tables come from migrate)."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    server = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


# --- (c), (d): resampling one year of 1-minute bars, GET /api/v1/bars p99 -----------------------------


def part_history(database_url: str | None, requests: int) -> None:
    """bench/bars_history.py in a child per database: it sets Django up on a fresh database of its own."""
    for url in [None, database_url] if database_url else [None]:
        command = [sys.executable, str(ROOT / "bench" / "bars_history.py"), "--requests", str(requests)]
        subprocess.run([*command, *(["--database-url", url] if url else [])], check=True)  # noqa: S603


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="frames per tick-path figure")
    parser.add_argument("--rounds", type=int, default=3, help="minutes of 27,000 bars written")
    parser.add_argument("--database-url", help="also write to this PostgreSQL database")
    parser.add_argument("--requests", type=int, default=300, help="GET /api/v1/bars requests per figure")
    parser.add_argument("--only", choices=["aggregator", "write", "history"], help="run one part")
    parser.add_argument("--write-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_child:
        write_child(args.rounds)
        return
    print(f"numpy {np.__version__}; load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.only in (None, "aggregator"):
        part_aggregator(args.repeats)
    if args.only in (None, "write"):
        with tempfile.TemporaryDirectory() as scratch:
            urls = [f"sqlite:///{scratch}/bars-bench.sqlite3"]
            if args.database_url:
                postgres_ready(args.database_url)
                urls.append(args.database_url)
            part_write(urls, args.rounds)
    if args.only in (None, "history"):
        part_history(args.database_url, args.requests)


if __name__ == "__main__":
    main()
