"""Orders end to end: HTTP API (uvicorn) -> database -> orders queue -> Celery worker -> kitesim.

Everything runs as in production, each in its own process: kitesim, the Procfile's web line, a Celery
worker on the ``orders`` queue and celery beat (reconcile + stuck-order sweeper), on a fresh database
(a SQLite file, or with ``--database-url`` a new database on that PostgreSQL server, dropped after) and
Redis database 12 (BENCH_REDIS_URL). Four API clients trade on four broker accounts
(four api_keys, each with Kite's 10 orders/s, 400/min).

1. latency: POST -> Kite acknowledged (the order's placed_at), orders paced below Kite's limits;
2. throughput: 4 clients POST as fast as they can while the workers are paused -- what the API alone
   accepts and queues -- over the Procfile's web line, then, as the reference, the same Django app over
   uvicorn's own WSGI interface with as many workers; then the queue drains into Kite at Kite's pace;
3. chaos: orders while workers are SIGKILLed at random (a whole worker, or its pool children) and
   restarted; then Kite's own order books are counted by our per-order tags.

    .venv/bin/python bench/orders.py [--latency-orders 60] [--throughput-orders 800] [--chaos-orders 200]
        [--database-url postgres://postgres@127.0.0.1:5432/test]

BENCH_REDIS_URL picks the Redis database (flushed before and after). ``--keep`` keeps the logs.
"""

import argparse
import os
import random
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
ACCOUNTS = [(f"bench{n}", f"secret{n}", f"token{n}") for n in range(1, 5)]
WORKDIR = ROOT / "var" / f"bench-orders-{os.getpid()}"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-orders", type=int, default=60)
    parser.add_argument("--throughput-orders", type=int, default=800)
    parser.add_argument("--chaos-orders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/test: the bench creates a new "
        "database there and drops it after (default: a new SQLite file)",
    )
    parser.add_argument(
        "--keep", action="store_true", help=f"keep {WORKDIR.parent}/bench-orders-* (logs, database)"
    )
    return parser.parse_args()


ARGS = _arguments()
BENCH_DATABASE = f"bench_orders_{os.getpid()}"


def _database_url() -> str:
    if ARGS.database_url is None:
        return f"sqlite:///{WORKDIR / 'db.sqlite3'}"
    return urlsplit(ARGS.database_url)._replace(path=f"/{BENCH_DATABASE}").geturl()


def postgres_database(create: bool) -> None:
    """Create (or drop) the bench's own database on the --database-url server."""
    with psycopg.connect(ARGS.database_url, autocommit=True) as server:
        if create:
            server.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
        else:
            server.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


KITESIM_PORT, WEB_PORT = _free_port(), _free_port()
KITE_ROOT, WEB_ROOT = f"http://127.0.0.1:{KITESIM_PORT}", f"http://127.0.0.1:{WEB_PORT}"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
    "DJANGO_DEBUG": "false",
    "DATABASE_URL": _database_url(),
    "REDIS_URL": REDIS_URL,
    "KITE_ROOT": KITE_ROOT,
    "MARKET_CLOCK": "kitesim",  # kitesim's session is open at any hour
    "LOG_LEVEL": "WARNING",
    "KITE_HTTP_TIMEOUT": "3",
    "ORDER_LEASE_MARGIN_S": "1",
    "ORDER_RETRY_BASE_S": "0.5",
    "ORDER_RETRY_MAX_S": "5",
    "ORDER_STUCK_GRACE_S": "2",
    "ORDER_SWEEP_S": "1",
    "ORDER_RECONCILE_S": "2",
}
os.environ.update(ENV)
DATABASE = urlsplit(ENV["DATABASE_URL"]).scheme  # sqlite or postgres, printed with each figure

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.processes import Process, answers, pgrep  # noqa: E402
from orders.models import Order, TradingPermission  # noqa: E402
from ticks.clocks import market_now  # noqa: E402
from ticks.kite import kite_client_for  # noqa: E402
from ticks.models import BrokerAccount, ClientApiKey, Instrument  # noqa: E402
from ticks.services import broker_account_set_token, instruments_refresh_from_kite  # noqa: E402


def start_kitesim() -> Process:
    command = [sys.executable, "manage.py", "kitesim", "--port", str(KITESIM_PORT), "--seed", "7"]
    for api_key, secret, token in ACCOUNTS:
        command += ["--account", f"{api_key}:{secret}:{token}"]
    return Process("kitesim", command, lambda: answers(f"{KITE_ROOT}/_sim/state"), ENV, WORKDIR)


ASGI, WSGI = "tickerproject.asgi:application", "tickerproject.wsgi:application --interface wsgi"
PROCFILE_WEB = next(
    line.removeprefix("web:").strip()
    for line in (ROOT / "Procfile").read_text().splitlines()
    if line.startswith("web:")
)
assert ASGI in PROCFILE_WEB, PROCFILE_WEB


def start_web(port: int = WEB_PORT, app: str = ASGI, name: str = "web") -> Process:
    """The Procfile's web line as the shell runs it (its flags, worker count and environment) on ``port``;
    with ``app=WSGI`` the same line serving the Django app through uvicorn's own WSGI interface."""
    env = {**ENV, "WEB_PORT": str(port), "PATH": f"{Path(sys.executable).parent}:{ENV['PATH']}"}
    command = ["bash", "-c", f"exec {PROCFILE_WEB.replace(ASGI, app)}"]
    return Process(name, command, lambda: answers(f"http://127.0.0.1:{port}/api/v1/orders"), env, WORKDIR)


def web_workers() -> int:
    """uvicorn worker processes of the Procfile's web line: WEB_WORKERS, else the line's own default."""
    return int(os.environ.get("WEB_WORKERS") or re.search(r"\$\{WEB_WORKERS:-(\d+)\}", PROCFILE_WEB).group(1))


def cpu_seconds(process: Process) -> dict[int, float]:
    """User + system CPU of each process in the group (uvicorn's workers included), by pid."""
    seconds = {}
    for pid in pgrep("-g", process.popen.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return seconds


def _split(used: dict[int, float]) -> str:
    """How the server CPU fell on its busy processes, e.g. "50/50": the clients' keep-alive connections
    stay on the uvicorn worker that accepted them, so 4 clients can land 2+2 or 3+1 on 2 workers."""
    total = sum(used.values()) or 1.0
    return "/".join(
        f"{100 * cpu / total:.0f}" for cpu in sorted(used.values(), reverse=True) if cpu >= 0.05 * total
    )


WORKERS: list[Process] = []  # every worker started, dead or alive, so that none outlives the bench


def start_worker() -> Process:
    name = f"worker-{len(WORKERS) + 1}"
    command = [sys.executable, "-m", "celery", "-A", "tickerproject", "worker", "-Q", "orders", "-c", "4"]
    command += ["--prefetch-multiplier=1", "-n", f"{name}@bench", "--loglevel=INFO", "--without-mingle"]
    command += ["--without-gossip"]
    log = WORKDIR / f"{name}.log"
    WORKERS.append(Process(name, command, lambda: log.exists() and "ready." in log.read_text(), ENV, WORKDIR))
    return WORKERS[-1]


def start_beat() -> Process:
    command = [sys.executable, "-m", "celery", "-A", "tickerproject", "beat", "--loglevel=WARNING"]
    command += ["--schedule", str(WORKDIR / "beat-schedule")]
    return Process("beat", command, lambda: True, ENV, WORKDIR)


# --- the world: database, accounts, clients ---------------------------------------------------------


def prepare_database() -> tuple[list[str], Instrument]:
    """Migrate, four broker accounts with kitesim's tokens, one client (user + API key) per account."""
    call_command("migrate", verbosity=0)
    keys = []
    for api_key, secret, token in ACCOUNTS:
        account = BrokerAccount(name=api_key, api_key=api_key, api_secret=secret)
        account = broker_account_set_token(account=account, access_token=token, issued_at=market_now())
        user = get_user_model().objects.create_user(username=f"client-{api_key}")
        TradingPermission.objects.create(user=user, account=account)
        keys.append(ClientApiKey.objects.create_key(name="bench", user=user)[1])
    instruments_refresh_from_kite(account=BrokerAccount.objects.first())
    options = Instrument.objects.filter(name="NIFTY", instrument_type="CE", is_active=True)
    expiry = options.order_by("expiry").values_list("expiry", flat=True).first()
    option = min(options.filter(expiry=expiry), key=lambda o: abs(o.strike - 24800))
    return keys, option


class Client:
    """One API client (an algo) trading on its own account with MARKET orders, BUY and SELL in turn."""

    def __init__(self, key: str, account: str, option: Instrument) -> None:
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Api-Key {key}"
        self.account = account
        self.option = option
        self.sent = 0

    def place(self, root: str = WEB_ROOT) -> tuple[int, float, dict[str, Any]]:
        body = {
            "account": self.account, "exchange": self.option.exchange, "tradingsymbol": self.option.tradingsymbol,
            "variety": "regular", "transaction_type": "BUY" if self.sent % 2 == 0 else "SELL",
            "order_type": "MARKET", "product": "NRML", "quantity": self.option.lot_size,
        }  # fmt: skip
        self.sent += 1
        started = time.time()
        response = self.session.post(
            f"{root}/api/v1/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=30
        )
        return response.status_code, started, response.json()


def _settled(ids: list[int]) -> int:
    """How many of the orders Kite has acknowledged (or that ended without reaching it)."""
    return (
        Order.objects.filter(pk__in=ids)
        .exclude(placed_at__isnull=True, status__in=["PENDING", "SUBMITTING"])
        .count()
    )


def wait_for_kite(ids: list[int], timeout: float) -> float:
    started = time.monotonic()
    while _settled(ids) < len(ids):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {_settled(ids)} of {len(ids)} orders reached Kite within {timeout:.0f} s")
        time.sleep(0.25)
    return time.monotonic() - started


def _ms(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the three runs -----------------------------------------------------------------------------


def run_latency(clients: list[Client], count: int) -> None:
    sent: dict[int, float] = {}
    post_times: list[float] = []
    for n in range(count):
        code, started, body = clients[n % len(clients)].place()
        assert code == 201, body
        post_times.append(time.time() - started)
        sent[body["id"]] = started
        time.sleep(0.2)  # 5 orders/s across 4 api_keys: well inside Kite's limits
    wait_for_kite(list(sent), timeout=60)
    placed = dict(Order.objects.filter(pk__in=list(sent)).values_list("pk", "placed_at"))
    latency = [placed[pk].timestamp() - started for pk, started in sent.items()]
    print(f"latency     [{DATABASE}] {count} orders, POST -> Kite acknowledged: p50 {_ms(latency, 0.5):.0f} ms, "
          f"p99 {_ms(latency, 0.99):.0f} ms (POST alone: p50 {_ms(post_times, 0.5):.0f} ms, "
          f"p99 {_ms(post_times, 0.99):.0f} ms)")  # fmt: skip


WARM_UP = 5  # orders per client before each timed run: accepted and drained, not timed


def run_throughput(clients: list[Client], count: int, worker: Process, web: Process) -> Process:
    """The API alone (workers paused): what it validates, stores and queues per second, then the drain."""
    worker.stop()
    print(f"throughput  the API alone, {len(clients)} clients, workers paused (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), {count // 2} orders a run:")  # fmt: skip
    accepted, asgi_rate = _burst(clients, count // 2, web, WEB_ROOT, f"the Procfile's web ({PROCFILE_WEB})")
    port = _free_port()
    wsgi = start_web(port, WSGI, "web-wsgi")
    try:
        ids, rate = _burst(
            clients,
            count // 2,
            wsgi,
            f"http://127.0.0.1:{port}",
            "reference: the same line, tickerproject.wsgi --interface wsgi",
        )
    finally:
        wsgi.stop()
    accepted += ids
    print(f"              the Procfile's web = {asgi_rate / rate:.2f} x the WSGI reference")
    worker = start_worker()
    drained = wait_for_kite(accepted, timeout=120)
    print(f"            drained into Kite in {drained:.1f} s = {len(accepted) / drained:.1f} orders/s over "
          f"{len(clients)} api_keys (Kite: 10/s, 400/min each; the limiter runs at 80 %)")  # fmt: skip
    return worker


def _burst(clients: list[Client], count: int, web: Process, root: str, label: str) -> tuple[list[int], float]:
    """Accepted order ids and orders/s after a warm-up; prints them with the CPU per order of the server
    and of the bench's own clients (they share the cores)."""

    def burst(client: Client, orders: int) -> list[tuple[int, float, dict[str, Any]]]:
        return [client.place(root) for _ in range(orders)]

    def run(orders: int) -> list[tuple[int, float, dict[str, Any]]]:
        with ThreadPoolExecutor(len(clients)) as pool:
            return [result for batch in pool.map(burst, clients, [orders] * len(clients)) for result in batch]

    warmed = _accepted(run(WARM_UP))  # a new server's first requests import and connect
    before, client_cpu = cpu_seconds(web), time.process_time()
    started = time.monotonic()
    results = run(count // len(clients))
    elapsed = time.monotonic() - started
    used = {pid: cpu - before.get(pid, 0.0) for pid, cpu in cpu_seconds(web).items()}
    cpu, client_cpu = sum(used.values()), time.process_time() - client_cpu
    accepted = _accepted(results)
    per_order_ms = 1000 * cpu / max(len(accepted), 1)
    rate = len(accepted) / elapsed
    print(f"            {label} [{DATABASE}]: {len(accepted)}/{len(results)} accepted in {elapsed:.2f} s = "
          f"{rate:.0f} orders/s; server CPU {per_order_ms:.1f} ms an order = {1000 / per_order_ms:.0f} "
          f"orders/s per core, split {_split(used)} % over its processes; bench clients "
          f"{1000 * client_cpu / max(len(accepted), 1):.1f} ms")  # fmt: skip
    return warmed + accepted, rate


def _accepted(results: list[tuple[int, float, dict[str, Any]]]) -> list[int]:
    return [body["id"] for code, _, body in results if code == 201]


def run_chaos(clients: list[Client], count: int, worker: Process, seed: int) -> Process:
    rnd = random.Random(seed)
    ids: list[int] = []
    kills: Counter[str] = Counter()
    state = {"worker": worker}
    done = threading.Event()

    def killer() -> None:
        while not done.wait(rnd.uniform(1.0, 3.0)):
            if rnd.random() < 0.5:
                state["worker"].kill()
                kills["whole worker"] += 1
                state["worker"] = start_worker()
            else:
                kills["pool children"] += state["worker"].kill_children()

    chaos = threading.Thread(target=killer)
    chaos.start()
    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(clients[n % len(clients)].place) for n in range(count)]
        results = [future.result() for future in futures]
    ids = [body["id"] for code, _, body in results if code == 201]
    try:
        deadline = time.monotonic() + 25
        while _settled(ids) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.25)
    finally:
        done.set()
        chaos.join()
    settle = wait_for_kite(ids, timeout=120)
    report_chaos(ids, kills, settle)
    return state["worker"]


def report_chaos(ids: list[int], kills: Counter[str], settle: float) -> None:
    ours = dict(Order.objects.filter(pk__in=ids).values_list("kite_tag", "broker_order_id"))
    at_kite: Counter[str] = Counter()
    for account in BrokerAccount.objects.all():
        for row in kite_client_for(account).orders():
            if row.get("tag") in ours:
                at_kite[row["tag"]] += 1
    duplicates = sum(n - 1 for n in at_kite.values() if n > 1)
    statuses = Counter(Order.objects.filter(pk__in=ids).values_list("status", flat=True))
    takeovers = (
        Order.objects.filter(pk__in=ids, events__message="took over a lapsed lease").distinct().count()
    )
    adopted = Order.objects.filter(pk__in=ids, events__source="reconcile", events__status_from__in=["PENDING", "SUBMITTING"]).distinct().count()  # fmt: skip
    print(f"chaos       {len(ids)} accepted while killing {dict(kills)} (then {settle:.1f} s to settle)")
    print(f"            Kite-side count = {sum(at_kite.values())} (accepted {len(ids)}), duplicates = {duplicates}, "
          f"missing = {len(set(ours) - set(at_kite))}; lapsed leases taken over: {takeovers}, adopted by tag: "
          f"{adopted}; statuses {dict(statuses)}")  # fmt: skip
    if sum(at_kite.values()) != len(ids) or duplicates:
        raise SystemExit("exactly-once violated")


def main() -> None:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    redis.Redis.from_url(REDIS_URL).flushdb()
    if ARGS.database_url:
        postgres_database(create=True)
    processes: list[Process] = []
    try:
        processes.append(start_kitesim())
        keys, option = prepare_database()
        clients = [Client(key, api_key, option) for key, (api_key, _, _) in zip(keys, ACCOUNTS, strict=True)]
        web = start_web()
        processes += [web, start_beat()]
        worker = start_worker()
        print(
            f"orders bench: kitesim, web x{web_workers()} (the Procfile's line), celery worker -c 4 + beat, {DATABASE} database; "
            f"{timezone.localtime():%Y-%m-%d %H:%M %Z}"
        )
        if ARGS.latency_orders:
            run_latency(clients, ARGS.latency_orders)
        if ARGS.throughput_orders:
            worker = run_throughput(clients, ARGS.throughput_orders, worker, web)
        if ARGS.chaos_orders:
            run_chaos(clients, ARGS.chaos_orders, worker, ARGS.seed)
    finally:
        for process in [*WORKERS, *reversed(processes)]:
            process.stop()
        redis.Redis.from_url(REDIS_URL).flushdb()
        if ARGS.database_url:
            connections.close_all()
            postgres_database(create=False)
        if not ARGS.keep:
            shutil.rmtree(WORKDIR, ignore_errors=True)


if __name__ == "__main__":
    main()
