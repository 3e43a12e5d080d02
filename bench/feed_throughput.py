"""The feed path under load: kitesim -> AccountPool -> decode -> Redis latest-tick cache.

3 accounts x 9,000 full-mode tokens (3 connections x 3000 each), kitesim in its own process at
Kite's real cadence (--speed 1: each instrument ticks at most ~2x a second, only on change).
Each account's feed runs in its own process, as in a feeds worker. Prints, per account: ticks/s
sustained, CPU (and core-seconds per 10k ticks/s), frame-receive -> Redis-written latency p50/p99,
and RSS. Uses Redis database 14.

    .venv/bin/python bench/feed_throughput.py [--seconds 20] [--speed 1]
"""

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time
from multiprocessing import Process, Queue
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ticks.feeds.connection import ConnectionSettings, Credentials  # noqa: E402
from ticks.feeds.latest import LatestTickCache  # noqa: E402
from ticks.feeds.pipeline import FrameProcessor, TickBatch  # noqa: E402
from ticks.feeds.pool import AccountPool  # noqa: E402
from ticks.feeds.redis_io import feed_redis  # noqa: E402

ACCOUNTS = [("bench1", "s1", "t1"), ("bench2", "s2", "t2"), ("bench3", "s3", "t3")]
CONNECTIONS, PER_CONNECTION = 3, 3000
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_kitesim(port: int, speed: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(ROOT / "manage.py"), "kitesim", "--port", str(port), "--speed", str(speed)]
    command += ["--strikes", "220", "--seed", "7"]
    for key, secret, token in ACCOUNTS:
        command += ["--account", f"{key}:{secret}:{token}"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


async def _tokens(root: str) -> list[int]:
    headers = {"X-Kite-Version": "3", "Authorization": f"token {ACCOUNTS[0][0]}:{ACCOUNTS[0][2]}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{root}/instruments", headers=headers) as answer:
                    text = await answer.text()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        else:
            raise TimeoutError("kitesim did not start")
    rows = [line.split(",") for line in text.splitlines()[1:]]
    tokens = [int(row[0]) for row in rows if row[11] in ("NFO", "BFO")]
    if len(tokens) < CONNECTIONS * PER_CONNECTION:
        raise SystemExit(f"kitesim lists only {len(tokens)} tradable tokens")
    return tokens[: CONNECTIONS * PER_CONNECTION]


class Meter:
    """The last publish hook: counts ticks and the receive -> written latency of every frame."""

    def __init__(self) -> None:
        self.ticks = 0
        self.latencies: list[float] = []
        self.recording = False

    async def __call__(self, batch: TickBatch) -> None:
        if self.recording:
            self.ticks += len(batch.ticks)
            self.latencies.append(time.time() - batch.received_at)


def _pool(key: str, token: str, ws_root: str, processor: FrameProcessor) -> AccountPool:
    async def credentials() -> Credentials:
        return Credentials(key, token)

    return AccountPool(
        account=key,
        max_connections=CONNECTIONS,
        tokens_per_connection=PER_CONNECTION,
        settings=ConnectionSettings(ws_root=ws_root, watchdog_s=10),
        credentials=credentials,
        on_frame=processor,
        on_text=lambda message: None,
        on_reconnect=lambda reason: print(f"  reconnect: {reason}"),
    )


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _feed(
    account: tuple[str, str, str], ws_root: str, tokens: list[int], seconds: float
) -> dict[str, float]:
    """One account's feed, as a feeds worker child runs it: its own process and event loop."""
    key, _, token = account
    redis = feed_redis(REDIS_URL)
    meter = Meter()
    stop = asyncio.Event()
    plan = {
        c: dict.fromkeys(tokens[c * PER_CONNECTION : (c + 1) * PER_CONNECTION], "full")
        for c in range(CONNECTIONS)
    }
    pool = _pool(key, token, ws_root, FrameProcessor(key, hooks=[LatestTickCache(redis), meter]))
    await pool.apply(plan)
    run = asyncio.create_task(pool.run(stop))
    await asyncio.sleep(5)  # warm-up: subscriptions settle, first full snapshots go by
    cpu0, wall0 = time.process_time(), time.perf_counter()
    meter.recording = True
    await asyncio.sleep(seconds)
    meter.recording = False
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stop.set()
    await run
    await redis.aclose()
    latency_ms = np.array(meter.latencies) * 1000
    return {
        "ticks": meter.ticks,
        "frames": len(meter.latencies),
        "wall": wall,
        "cpu": cpu,
        "p50": float(np.percentile(latency_ms, 50)),
        "p99": float(np.percentile(latency_ms, 99)),
        "rss": _rss_mb(),
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _feed_process(
    account: tuple[str, str, str], ws_root: str, tokens: list[int], seconds: float, out: Queue
) -> None:
    out.put((account[0], asyncio.run(_feed(account, ws_root, tokens, seconds))))


def _run(seconds: float, speed: float) -> None:
    port = _free_port()
    server = _start_kitesim(port, speed)
    try:
        tokens = asyncio.run(_tokens(f"http://127.0.0.1:{port}"))
        out: Queue = Queue()
        feeds = [
            Process(target=_feed_process, args=(account, f"ws://127.0.0.1:{port}", tokens, seconds, out))
            for account in ACCOUNTS
        ]
        for feed in feeds:
            feed.start()
        results = dict(out.get(timeout=seconds + 60) for _ in feeds)
        for feed in feeds:
            feed.join(30)
    finally:
        server.terminate()
        server.wait(10)
        asyncio.run(_flush())
    _print(results)


async def _flush() -> None:
    redis = feed_redis(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()


def _print(results: dict[str, dict[str, float]]) -> None:
    print(
        f"{len(ACCOUNTS)} accounts x {CONNECTIONS * PER_CONNECTION} full-mode tokens, one feed process each"
    )
    print(
        f"{'account':8} {'ticks/s':>9} {'frames/s':>9} {'CPU %':>6} {'core-s/10k t/s':>15} {'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7}"
    )
    for name, r in results.items():
        rate = r["ticks"] / r["wall"]
        cpu = r["cpu"] / r["wall"]
        print(
            f"{name:8} {rate:>9,.0f} {r['frames'] / r['wall']:>9.1f} {cpu * 100:>6.0f} {cpu / (rate / 10_000):>15.3f}"
            f" {r['p50']:>7.2f} {r['p99']:>7.2f} {r['rss']:>7.0f}"
        )
    total = sum(r["ticks"] / r["wall"] for r in results.values())
    print(f"total ticks/s sustained  {total:,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--speed", type=float, default=1.0, help="kitesim clock speed (1 = Kite's real cadence)"
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tickerproject.settings.base")
    _run(args.seconds, args.speed)


if __name__ == "__main__":
    main()
