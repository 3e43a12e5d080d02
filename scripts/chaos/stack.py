"""The processes a chaos scenario breaks: a private Redis, kitesim, the Procfile's web line, a Celery
worker (default,orders) and beat, each in its own process group (bench.processes.Process), logging to
WORKDIR/<scenario>, on a SQLite database in WORKDIR that is migrated and seeded afresh for every scenario.

The runner's own process is configured once (``django_setup``) for the same database and Redis, so a
scenario can read orders through the ORM and Kite's order book through kiteconnect. Ports come from
18400-18499 (the range this tool owns), checked free at start. A scenario that needs other settings in its
processes passes them to ``Stack(env=...)``.

    with Stack("worker_sigkill") as stack:
        stack.start_redis(); stack.start_kitesim(); seeded = stack.seed()
        stack.start_web(); stack.start_worker(); stack.start_beat()
"""

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kiteconnect import KiteConnect

from bench.processes import Process, answers
from scripts.chaos.ports import free_ports
from scripts.ensure_redis import answers as redis_answers
from scripts.ensure_redis import server_binary

ROOT = Path(__file__).resolve().parents[2]
PORT_RANGE = range(18400, 18500)
WORKDIR = Path(tempfile.gettempdir()) / f"chaos-{os.getpid()}"  # made by the first Stack
ACCOUNT = ("chaos", "chaossecret", "chaostoken")  # kitesim's api_key:api_secret:access_token


REDIS_PORT, KITESIM_PORT, WEB_PORT = free_ports("127.0.0.1", 3, PORT_RANGE)
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
KITE_ROOT, WEB_ROOT = f"http://127.0.0.1:{KITESIM_PORT}", f"http://127.0.0.1:{WEB_PORT}"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
    "DJANGO_DEBUG": "false",
    "DATABASE_URL": f"sqlite:///{WORKDIR / 'db.sqlite3'}",
    "REDIS_URL": REDIS_URL,
    "KITE_ROOT": KITE_ROOT,
    "MARKET_CLOCK": "kitesim",  # kitesim's session is open at any hour
    "LOG_LEVEL": "WARNING",
    "WEB_PORT": str(WEB_PORT),
    "WEB_WORKERS": "1",  # two cores shared with the workers and kitesim; one restart is the fault either way
    "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the Procfile's bare `uvicorn`
    # Fast recovery paths, as bench/orders.py runs them: a stuck order is re-examined within seconds.
    "KITE_HTTP_TIMEOUT": "3",
    "ORDER_LEASE_MARGIN_S": "1",
    "ORDER_RETRY_BASE_S": "0.5",
    "ORDER_RETRY_MAX_S": "5",
    "ORDER_STUCK_GRACE_S": "2",
    "ORDER_SWEEP_S": "1",
    "ORDER_RECONCILE_S": "2",
}


def django_setup() -> None:
    """Point this process at the stack's database and Redis; call before importing any scenario."""
    os.environ.update(ENV)
    import django

    django.setup()


def kite_order_tags() -> list[str]:
    """Every tag in kitesim's order book of the chaos account: what reached Kite, duplicates included."""
    api_key, _, token = ACCOUNT
    kite = KiteConnect(api_key=api_key, access_token=token, root=KITE_ROOT, timeout=10)
    return [row["tag"] for row in kite.orders() if row.get("tag")]


@dataclass(frozen=True, slots=True)
class Seeded:
    api_key: str  # the REST client's key (Authorization: Api-Key ...)
    account: str
    exchange: str
    tradingsymbol: str
    lot_size: int


class Stack:
    """One scenario's processes, logs in WORKDIR/<scenario>; leaving the ``with`` block stops every one,
    whatever happened."""

    def __init__(self, scenario: str, env: Mapping[str, str] | None = None) -> None:
        self.logs = WORKDIR / scenario
        self.logs.mkdir(parents=True)
        self.env = {**ENV, **(env or {})}  # the children's settings; this process keeps ENV's
        self.processes: dict[str, Process] = {}
        self._starts = 0

    def __enter__(self) -> "Stack":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        for name in reversed(list(self.processes)):  # SIGKILL: the scenario is over, its data is not needed
            self.stop(name, hard=True)

    def _label(self, name: str) -> str:
        """``03-worker``: a restarted process gets a log of its own, in start order."""
        self._starts += 1
        return f"{self._starts:02d}-{name}"

    def _start(
        self,
        name: str,
        command: list[str],
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        label: str = "",
    ) -> Process:
        process = Process(label or self._label(name), command, ready, env or self.env, self.logs)
        self.processes[name] = process
        return process

    def stop(self, name: str, *, hard: bool = False) -> None:
        """SIGTERM (or SIGKILL with ``hard``), then SIGKILL to the whole group: nothing outlives it."""
        process = self.processes.pop(name)
        if hard:
            process.kill()
        else:
            process.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)

    def start_redis(self, *, empty: bool = False) -> Process:
        """Append-only with fsync per write, in <logs>/redis: a restart on the same port keeps its data,
        unless ``empty`` (a crash that lost it: queued messages, leases, rate-limit buckets)."""
        data = self.logs / "redis"
        if empty:
            shutil.rmtree(data, ignore_errors=True)
        data.mkdir(exist_ok=True)
        command = [server_binary(), "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--dir", str(data)]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        # Not under libfaketime (make test-clock): it breaks redis-server's allocator at start-up.
        env = {name: value for name, value in self.env.items() if name not in ("LD_PRELOAD", "FAKETIME")}
        return self._start("redis", command, _redis_answers, env)

    def start_kitesim(self) -> Process:
        command = [sys.executable, "manage.py", "kitesim", "--port", str(KITESIM_PORT), "--seed", "7"]
        command += ["--account", ":".join(ACCOUNT)]
        return self._start("kitesim", command, lambda: answers(f"{KITE_ROOT}/_sim/state"))

    def start_web(self) -> Process:
        """The Procfile's web line, as the shell runs it."""
        line = next(row for row in (ROOT / "Procfile").read_text().splitlines() if row.startswith("web:"))
        command = ["bash", "-c", f"exec {line.removeprefix('web:').strip()}"]
        return self._start("web", command, lambda: answers(f"{WEB_ROOT}/api/v1/orders"))

    def start_worker(self) -> Process:
        label = self._label("worker")
        command = [sys.executable, "-m", "celery", "-A", "tickerproject", "worker", "-Q", "default,orders"]
        command += [
            "-c",
            "4",
            "-n",
            f"{label}@chaos",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
        ]
        log = self.logs / f"{label}.log"
        return self._start(
            "worker", command, lambda: log.exists() and "ready." in log.read_text(), label=label
        )

    def start_beat(self) -> Process:
        command = [sys.executable, "-m", "celery", "-A", "tickerproject", "beat", "--loglevel=WARNING"]
        command += ["--schedule", str(self.logs / "beat-schedule")]
        return self._start("beat", command, lambda: True)

    def seed(self) -> Seeded:
        """A fresh database: migrated, kitesim's chaos account with its token and instruments, and one
        REST client (user, trading permission, API key) on it; the order is a NIFTY call near the money."""
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connections

        from orders.models import TradingPermission
        from ticks.clocks import market_now
        from ticks.models import BrokerAccount, ClientApiKey, Instrument
        from ticks.services import broker_account_set_token, instruments_refresh_from_kite

        connections.close_all()
        for stale in WORKDIR.glob("db.sqlite3*"):  # the previous scenario's database, WAL included
            stale.unlink()
        call_command("migrate", verbosity=0)
        name, secret, token = ACCOUNT
        account = BrokerAccount(name=name, api_key=name, api_secret=secret)
        account = broker_account_set_token(account=account, access_token=token, issued_at=market_now())
        user = get_user_model().objects.create_user(username="chaos-client")
        TradingPermission.objects.create(user=user, account=account)
        key = ClientApiKey.objects.create_key(name="chaos", user=user)[1]
        instruments_refresh_from_kite(account=account)
        options = Instrument.objects.filter(name="NIFTY", instrument_type="CE", is_active=True)
        expiry = options.order_by("expiry").values_list("expiry", flat=True).first()
        option = min(options.filter(expiry=expiry), key=lambda o: abs(o.strike - 24800))
        return Seeded(key, name, option.exchange, option.tradingsymbol, option.lot_size)


def _redis_answers() -> bool:
    return redis_answers(REDIS_URL)
