"""Live chains to many browsers: kitesim -> feed worker (greeks, fan-out) -> web -> N WebSocket clients.

Starts kitesim, a Celery feeds worker and the web (uvicorn with --workers, as in the Procfile) as their own
processes on a bench database and Redis database 12, then connects N clients (N = 1, 100, 500; each
offers permessage-deflate as browsers do), each subscribed to one of 4 NIFTY chains, and for the N
in --slow runs again with one more client that subscribes and never reads. Prints per round: delta
latency from the feed receiving the frame to the client receiving the delta (p50/p99; the kitesim ->
feed loopback hop is bench/feed_throughput.py's), deltas/s received, the web processes' CPU and RSS,
this process's CPU (the clients share the same 2 cores), how long the N snapshots took, any
connection that failed, and what became of the slow client. Latency is given for the newest row of
each delta (how fresh the client's view is) and for the oldest (the longest any row waited for
conflation, bounded by STREAM_FLUSH_MS). The clients' own garbage collector is off while they measure,
so that its pauses are not counted as the server's.

    .venv/bin/python bench/fanout.py [--seconds 15] [--clients 1,100,500] [--slow 100]
"""

import argparse
import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = ROOT / "var" / "bench-fanout.sqlite3"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
    "DATABASE_URL": f"sqlite:///{BENCH_DB}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
    "KITE_ROOT": "http://127.0.0.1:18765",
    "MARKET_CLOCK": "kitesim",  # the plan follows kitesim's trading day, whatever the host's
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidHandshake  # noqa: E402

from tests.waiting import until  # noqa: E402
from ticks.clocks import market_now  # noqa: E402
from ticks.models import BrokerAccount, ClientApiKey, WatchSpec  # noqa: E402
from ticks.selectors import chain_expiries  # noqa: E402
from ticks.services import broker_account_set_token, instruments_refresh_from_kite  # noqa: E402
from workers.services import feed_plan_refresh, feed_supervise, redis_client  # noqa: E402

WEB_PORT = 18000


def _spawn(command: list[str], log: str) -> subprocess.Popen[bytes]:
    out = (ROOT / "var" / log).open("w")
    return subprocess.Popen(  # noqa: S603 - our own interpreter with fixed arguments
        command, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _prepare() -> list[str]:
    BENCH_DB.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    redis_client().flushdb()
    account = BrokerAccount(name="demo", api_key="demo", api_secret="demosecret")
    broker_account_set_token(account=account, access_token="demotoken", issued_at=market_now())
    until(lambda: _loaded(account), timeout=60)
    WatchSpec.objects.create(underlying="NIFTY", expiry_count=4, strikes_around_atm=10, mode="full")
    feed_plan_refresh(client=redis_client())
    return [f"NIFTY:{expiry.isoformat()}" for expiry in chain_expiries(underlying="NIFTY")[:4]]


def _loaded(account: BrokerAccount) -> bool:
    try:
        return instruments_refresh_from_kite(account=account).upserted > 0
    except OSError:
        return False


def _group_stats(pgid: int) -> list[list[str]]:
    """/proc/<pid>/stat fields (after the command name) of every live process in the group."""
    stats = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid:
            stats.append(fields)
    return stats


def _cpu_seconds(pgid: int) -> float:
    """User + system CPU of the web's process group (uvicorn's supervisor and its workers)."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in _group_stats(pgid))
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or waiting on I/O) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pgid: int) -> float:
    """Resident memory of the web's process group."""
    return sum(int(fields[21]) for fields in _group_stats(pgid)) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Round:
    """What the clients of one round saw."""

    latencies: list[tuple[float, float]] = field(default_factory=list)  # (newest row, oldest row) seconds
    snapshots: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # how connections ended early, by reason
    slow_client: str = "connected to the end"


def _timing(text: str) -> tuple[float, float] | None:
    """A delta's feed-receipt times. The server writes them last (ticks.stream.delta_text), so the
    client parses only the tail: 500 clients share this process's core with nothing to spare."""
    at = text.rfind(',"received_at":')
    if not text.startswith('{"type":"delta"') or at < 0:
        return None
    times = json.loads("{" + text[at + 1 :])
    if times["received_at"] is None:
        return None
    return times["newest_received_at"], times["received_at"]


async def _client(url: str, chain: str, seen: Round, stop: asyncio.Event) -> None:
    try:
        async with connect(url, max_size=None, open_timeout=120, ping_timeout=None) as ws:
            await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                now = time.time()
                timing = _timing(text)
                if timing is not None:
                    seen.latencies.append((now - timing[0], now - timing[1]))
                elif json.loads(text)["type"] == "snapshot":  # rare: parse it whole
                    seen.snapshots += 1
    except ConnectionClosed as closed:
        seen.failures[f"closed {closed.rcvd.code if closed.rcvd else 'without a close frame'}"] += 1
    except (OSError, TimeoutError, InvalidHandshake) as error:
        seen.failures[type(error).__name__] += 1


async def _never_reads(url: str, chain: str, seen: Round, stop: asyncio.Event) -> None:
    """Subscribes, then never reads: its TCP window fills and the server must not wait on it."""
    started = time.monotonic()
    async with connect(url, max_queue=1, ping_timeout=None) as ws:
        await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
        closed = asyncio.ensure_future(ws.wait_closed())
        await asyncio.wait([closed, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if closed.done():
            code = ws.close_code
            seen.slow_client = f"dropped by the server with {code} after {time.monotonic() - started:.0f} s"


async def _round(n: int, chains: list[str], key: str, seconds: float, web_pid: int, slow: bool) -> None:
    url = f"ws://127.0.0.1:{WEB_PORT}/ws/stream/?api_key={key}"
    seen, stop = Round(), asyncio.Event()
    tasks = [asyncio.create_task(_client(url, chains[i % len(chains)], seen, stop)) for i in range(n)]
    if slow:
        tasks.append(asyncio.create_task(_never_reads(url, chains[0], seen, stop)))
    connecting = time.monotonic()
    while seen.snapshots + sum(seen.failures.values()) < n and time.monotonic() - connecting < 120:
        await asyncio.sleep(0.1)
    connected_in = time.monotonic() - connecting
    await asyncio.sleep(2)  # the snapshots' aftermath settles
    seen.latencies.clear()
    gc.disable()  # a collection here would stall every client at once and be counted as the server's
    cpu0, own0, busy0, t0 = (
        _cpu_seconds(web_pid),
        _own_cpu_seconds(),
        _machine_busy_seconds(),
        time.monotonic(),
    )
    await asyncio.sleep(seconds)
    gc.enable()
    wall = time.monotonic() - t0
    cpu, own, busy = _cpu_seconds(web_pid) - cpu0, _own_cpu_seconds() - own0, _machine_busy_seconds() - busy0
    samples = np.array(seen.latencies, dtype=float).reshape(-1, 2) * 1000
    stop.set()
    await asyncio.gather(*tasks)
    label = f"{n:>4} clients{' + 1 slow' if slow else '':9}"
    setup = f"{seen.snapshots} snapshots in {connected_in:4.1f} s"
    if seen.failures:
        setup += f", failed: {dict(seen.failures)}"
    if len(samples) == 0:
        print(f"{label} no deltas received ({setup})")
        return
    fresh, oldest = samples[:, 0], samples[:, 1]
    print(
        f"{label} newest row p50 {np.percentile(fresh, 50):5.1f} p99 {np.percentile(fresh, 99):6.1f} ms"
        f"  oldest row p50 {np.percentile(oldest, 50):5.1f} p99 {np.percentile(oldest, 99):6.1f} ms"
        f"  {len(samples) / wall:5.0f} deltas/s  web CPU {cpu / wall * 100:3.0f}%"
        f" RSS {_rss_mb(web_pid):4.0f} MB  clients' CPU {own / wall * 100:3.0f}%"
        f"  machine {busy / wall * 100:3.0f}% of {os.cpu_count()} cores  ({setup})"
    )
    if slow:
        print(f"{'':23}the slow client: {seen.slow_client}")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", default="1,100,500")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_WORKERS", "2")),
        help="uvicorn worker processes, as the Procfile's WEB_WORKERS (default 2)",
    )
    parser.add_argument(
        "--slow",
        type=lambda text: {int(n) for n in text.split(",")},
        default={100},
        help="client counts to run again with one client that never reads",
    )
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    python = sys.executable
    procs = [_spawn([python, "manage.py", "kitesim", "--port", "18765", "--seed", "7"], "bench-kitesim.log")]
    try:
        chains = _prepare()
        _, key = ClientApiKey.objects.create_key(name="bench", user=_bench_user())
        procs.append(
            _spawn(
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "tickerproject",
                    "worker",
                    "-Q",
                    "feeds",
                    "-c",
                    "2",
                    "-n",
                    "bench-feeds@%h",
                    "--loglevel=WARNING",
                ],
                "bench-worker.log",
            )
        )
        web = _spawn(
            [
                python,
                "-m",
                "uvicorn",
                "tickerproject.asgi:application",
                "--port",
                str(WEB_PORT),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            "bench-web.log",
        )
        procs.append(web)
        time.sleep(5)
        feed_supervise(client=redis_client())
        until(lambda: redis_client().hlen("greeks:latest") > 50, timeout=60)
        print(
            f"4 chains ({', '.join(chains)}), one feed, one delta per {ENV.get('STREAM_FLUSH_MS', 100)} ms "
            "per connection on average (burst 2); "
            f"web: uvicorn with {args.workers} worker process(es), CPU and RSS summed over them"
        )
        for n in (int(c) for c in args.clients.split(",")):
            uvloop.run(_round(n, chains, key, args.seconds, web.pid, slow=False))
            if n in args.slow:
                uvloop.run(_round(n, chains, key, args.seconds, web.pid, slow=True))
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


def _bench_user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username="bench", password="bench")


if __name__ == "__main__":
    main()
