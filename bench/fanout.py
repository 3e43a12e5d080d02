"""Live chains to many browsers: kitesim -> feed worker (greeks, fan-out) -> web -> N WebSocket clients.

Starts kitesim, a Celery feeds worker and the web process (uvicorn) as their own processes on a
bench database and Redis database 12, then connects N clients (N = 1, 100, 500), each subscribed
to one of 4 NIFTY chains, plus one client that never reads. Prints per N: delta latency from the
feed receiving the frame to the client receiving the delta (p50/p99; the kitesim -> feed loopback
hop is not included), deltas/s received, the web process's CPU and RSS, and the never-reading
client's effect. Latency is given for the newest row of each delta (how fresh the client's view is)
and for the oldest (the longest any row waited for conflation, bounded by STREAM_FLUSH_MS).

    .venv/bin/python bench/fanout.py [--seconds 15] [--clients 1,100,500]
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = ROOT / "var" / "bench-fanout.sqlite3"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
    "DATABASE_URL": f"sqlite:///{BENCH_DB}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
    "KITE_ROOT": "http://127.0.0.1:18765",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from tests.waiting import until  # noqa: E402
from ticks.models import BrokerAccount, ClientApiKey, WatchSpec  # noqa: E402
from ticks.selectors import chain_expiries  # noqa: E402
from ticks.services import broker_account_set_token, instruments_refresh_from_kite  # noqa: E402
from workers.services import feed_plan_refresh, feed_supervise, redis_client  # noqa: E402

WEB_PORT = 18000


def _spawn(command: list[str], log: str) -> subprocess.Popen[bytes]:
    out = (ROOT / "var" / log).open("w")
    # Our own interpreter with fixed arguments: no untrusted input.
    return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603


def _prepare() -> list[str]:
    BENCH_DB.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    redis_client().flushdb()
    account = BrokerAccount(name="demo", api_key="demo", api_secret="demosecret")
    broker_account_set_token(account=account, access_token="demotoken", issued_at=timezone.now())
    until(lambda: _loaded(account), timeout=60)
    WatchSpec.objects.create(underlying="NIFTY", expiry_count=4, strikes_around_atm=10, mode="full")
    feed_plan_refresh(client=redis_client())
    return [f"NIFTY:{expiry.isoformat()}" for expiry in chain_expiries(underlying="NIFTY")[:4]]


def _loaded(account: BrokerAccount) -> bool:
    try:
        return instruments_refresh_from_kite(account=account).upserted > 0
    except OSError:
        return False


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _client(url: str, chain: str, latencies: list[tuple[float, float]], stop: asyncio.Event) -> None:
    async with connect(url, max_size=None, open_timeout=60) as ws:
        await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except TimeoutError:
                continue
            if message.get("type") == "delta" and message.get("received_at"):
                now = time.time()
                latencies.append((now - message["newest_received_at"], now - message["received_at"]))


async def _never_reads(url: str, chain: str, stop: asyncio.Event) -> None:
    async with connect(url, max_queue=1) as ws:
        await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
        await stop.wait()


async def _round(n: int, chains: list[str], key: str, seconds: float, web_pid: int) -> None:
    url = f"ws://127.0.0.1:{WEB_PORT}/ws/stream/?api_key={key}"
    latencies: list[tuple[float, float]] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_client(url, chains[i % len(chains)], latencies, stop)) for i in range(n)]
    tasks.append(asyncio.create_task(_never_reads(url, chains[0], stop)))
    await asyncio.sleep(5)  # connections open, snapshots go by
    latencies.clear()
    cpu0, t0 = _cpu_seconds(web_pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall, samples = _cpu_seconds(web_pid) - cpu0, time.monotonic() - t0, np.array(latencies) * 1000
    samples = samples.reshape(-1, 2)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if len(samples) == 0:
        print(f"{n:>5} clients  no deltas received")
        return
    fresh, oldest = samples[:, 0], samples[:, 1]
    print(
        f"{n:>5} clients  newest row p50 {np.percentile(fresh, 50):6.1f} p99 {np.percentile(fresh, 99):6.1f} ms"
        f"  oldest row p50 {np.percentile(oldest, 50):6.1f} p99 {np.percentile(oldest, 99):6.1f} ms"
        f"  {len(samples) / wall:6.0f} deltas/s  web CPU {cpu / wall * 100:3.0f}%  RSS {_rss_mb(web_pid):4.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", default="1,100,500")
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
                "--log-level",
                "warning",
            ],
            "bench-web.log",
        )
        procs.append(web)
        time.sleep(5)
        feed_supervise(client=redis_client())
        until(lambda: redis_client().hlen("greeks:latest") > 50, timeout=60)
        print(f"4 chains ({', '.join(chains)}), one feed, deltas every <= 100 ms per connection")
        for n in (int(c) for c in args.clients.split(",")):
            asyncio.run(_round(n, chains, key, args.seconds, web.pid))
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
