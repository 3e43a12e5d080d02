"""``make chaos``: feed faults injected into kitesim while real Celery processes stream three accounts.

Each scenario runs in a fresh interpreter (``python -m scripts.chaos.feeds <scenario>``) on a stack of its
own: a private redis-server, kitesim, a SQLite database, beat and a Celery worker on ``feeds,default``.
Django's settings (database, Redis, lease timings) are fixed when Django starts, so a stack cannot share
the caller's process; the child prints its Outcome as one JSON line.

What the columns mean here:
- *recovered*: frames flow again for every token the account carried, and the feed runs again;
- *seconds to recover*: fault injected (for the 403: the token valid again) -> the first tick whose
  exchange time is later than kitesim's clock at that moment, on any of the account's tokens;
- *ticks lost*: tokens the account carried before the fault that got no such tick within
  ``SETTLE_S`` after recovery (a token that ticks again late is not lost, a token dropped is).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import redis
import requests
from prometheus_client import CollectorRegistry, multiprocess

from bench.processes import Process, answers
from scripts.chaos.outcome import Outcome
from scripts.chaos.ports import free_ports
from scripts.ensure_redis import server_binary
from ticks.feeds.latest import latest_ticks_read
from ticks.feeds.lease import lease_holder_sync

ROOT = Path(__file__).resolve().parents[2]
MODULE = "scripts.chaos.feeds"
PORTS = range(18500, 18600)  # this scenario family's ports (the chaos runner's are 18400-18499)
ACCOUNTS = (("chaos0", "secret0", "token0"), ("chaos1", "secret1", "token1"), ("chaos2", "secret2", "token2"))
# Fast leases and watchdog, as the feed tests use: a scenario then takes seconds, not minutes.
FAST_FEEDS = {
    "FEED_LEASE_TTL_MS": "3000",
    "FEED_LEASE_RENEW_S": "0.5",
    "FEED_REPORT_S": "0.5",
    "FEED_WATCHDOG_S": "2",
    "FEED_REBALANCE_S": "2",
}
SUPERVISOR_PERIOD_S = 5.0  # CELERY_BEAT_SCHEDULE["feeds-supervise"]
TOKENS_PER_CONNECTION = 6  # small, so the NIFTY window (12 tokens) spreads over every account
STALL_S = 5.0  # kitesim's stall: longer than the watchdog (2 s), so the watchdog must act
MALFORMED_FRAMES = 5
SETTLE_S = 10.0
RECOVER_TIMEOUT_S = 60.0
START_TIMEOUT_S = 90.0
CHILD_TIMEOUT_S = 300.0
POLL_S = 0.1


# --- the parent side: one interpreter per scenario ----------------------------------------------------


def run_child(module: str, scenario: str) -> dict[str, Any]:
    """Run ``scenario`` of ``module`` in a fresh interpreter; its last stdout line is a JSON object.
    A crashed or overdue child gives ``{"error": ...}`` with the end of its stderr, so the row explains
    itself; an overdue one gets SIGTERM first, which its cleanup (processes, namespaces) runs on."""
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module, scenario],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.terminate()
        stdout, stderr = child.communicate(timeout=60)
        stderr += f"\nscenario {scenario} overran {CHILD_TIMEOUT_S:g} s"
    lines = stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        return {"error": f"scenario {scenario} exited {child.returncode}: {tail}"}
    return json.loads(lines[-1])


def exit_on_sigterm() -> None:
    """In the child: SIGTERM raises SystemExit, so every ``finally`` (processes, namespaces) runs."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def _outcome_of(scenario: str) -> Outcome:
    result = run_child(MODULE, scenario)
    if "error" in result:
        return Outcome(f"feed {scenario}", False, None, None, None, None, result["error"])
    return Outcome(**result)


def feed_drop() -> Outcome:
    return _outcome_of("drop")


def feed_stall() -> Outcome:
    return _outcome_of("stall")


def feed_403() -> Outcome:
    return _outcome_of("403")


def feed_malformed() -> Outcome:
    return _outcome_of("malformed")


SCENARIOS: tuple[Callable[[], Outcome], ...] = (feed_drop, feed_stall, feed_403, feed_malformed)


# --- the stack ------------------------------------------------------------------------------------------


@dataclass
class FeedStack:
    """Redis, kitesim and the database of one scenario, on ``host`` (loopback, or a bridge's address that
    network namespaces reach), and every process started on it, killed by ``close``."""

    workdir: Path
    host: str = "127.0.0.1"
    redis_binds: tuple[str, ...] = ("127.0.0.1",)
    processes: list[Process] = field(default_factory=list)
    account_ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redis_port, self.kitesim_port = free_ports(self.host, 2, PORTS)
        self.redis_url = f"redis://{self.host}:{self.redis_port}/0"
        self.kite_root = f"http://{self.host}:{self.kitesim_port}"
        self.metrics_dir = self.workdir / "metrics"
        self.metrics_dir.mkdir()
        self.env = {
            **{name: value for name, value in os.environ.items() if name not in ("LD_PRELOAD", "FAKETIME")},
            **FAST_FEEDS,
            "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"sqlite:///{self.workdir / 'db.sqlite3'}",
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,  # never a broker the caller's environment names
            "CELERY_RESULT_BACKEND": self.redis_url,
            "KITE_ROOT": self.kite_root,
            "KITE_WS_ROOT": self.kite_root.replace("http", "ws", 1),
            "MARKET_CLOCK": "kitesim",  # kitesim's session is open at any hour
            "LOG_LEVEL": "INFO",
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),  # the workers' counters, read by the scenario
        }
        self.client = redis.Redis.from_url(self.redis_url)

    def start(self) -> None:
        """Redis and kitesim, then Django on this stack's database, migrated and seeded."""
        command = [server_binary(), "--port", str(self.redis_port), "--bind", *self.redis_binds]
        # Protected mode refuses every client but loopback's; here Redis listens on loopback and, for the
        # host cut, on the scenario's own bridge, which only its namespaces reach.
        command += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        self.processes.append(Process("redis", command, self._redis_answers, self.env, self.workdir))
        command = [
            sys.executable,
            "manage.py",
            "kitesim",
            "--host",
            self.host,
            "--port",
            str(self.kitesim_port),
        ]
        command += ["--seed", "5", "--speed", "10"]
        for api_key, secret, token in ACCOUNTS:
            command += ["--account", f"{api_key}:{secret}:{token}"]
        ready = lambda: answers(f"{self.kite_root}/_sim/state")  # noqa: E731
        self.processes.append(Process("kitesim", command, ready, self.env, self.workdir))
        os.environ.update(self.env)
        self.account_ids = stack_seed()

    def _redis_answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def start_worker(self, name: str, queues: str, *, beat: bool, prefix: tuple[str, ...] = ()) -> Process:
        """A Celery worker (``prefix`` runs it elsewhere, e.g. in a network namespace); ``beat`` embeds
        the one beat (supervisor, rebalancer) in it."""
        log = self.workdir / f"{name}.log"
        command = [*prefix, sys.executable, "-m", "celery", "-A", "tickerproject", "worker", "-Q", queues]
        command += [
            "-c",
            str(len(ACCOUNTS) + 1),
            "-O",
            "fair",
            "--prefetch-multiplier=1",
            "-n",
            f"{name}@chaos",
        ]
        command += ["--loglevel=INFO", "--without-mingle", "--without-gossip"]
        if beat:
            command += ["-B", "--schedule", str(self.workdir / f"{name}.beat")]
        ready = lambda: log.exists() and "ready." in log.read_text()  # noqa: E731
        process = Process(name, command, ready, self.env, self.workdir)
        self.processes.append(process)
        return process

    def close(self) -> None:
        self.client.close()
        for process in reversed(self.processes):
            process.kill()

    # --- what the scenario observes ----------------------------------------------------------------

    def sim(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """kitesim's /_sim API: GET without a body, POST with one."""
        url = f"{self.kite_root}/_sim/{path}"
        response = (
            requests.post(url, json=body, timeout=5) if body is not None else requests.get(url, timeout=5)
        )
        response.raise_for_status()
        return response.json()

    def sim_now(self) -> float:
        return float(self.sim("state")["now"])

    def holder(self, account: str) -> str | None:
        return lease_holder_sync(self.client, self.account_ids[account])

    def carried(self, account: str) -> set[int]:
        """The tokens the account's feed reports on its live connections."""
        from workers.control import feed_status_key  # reads Django settings at import

        raw = self.client.get(feed_status_key(self.account_ids[account]))
        connections = json.loads(raw)["connections"] if raw else {}
        return {token for tokens in connections.values() for token in tokens}

    def ticked_after(self, tokens: set[int], moment: float) -> set[int]:
        """Tokens whose latest tick carries an exchange time later than ``moment`` (kitesim's clock)."""
        rows = latest_ticks_read(self.client, sorted(tokens))
        return {int(row["instrument_token"]) for row in rows if float(row["exchange_timestamp"]) > moment}

    def counter(self, name: str, **labels: str) -> float:
        """A counter summed over every worker process (their PROMETHEUS_MULTIPROC_DIR files)."""
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.metrics_dir))
        total = 0.0
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def streaming(self) -> dict[str, set[int]]:
        """Wait until every account holds its lease and carries tokens that tick; what each carries."""
        moment = self.sim_now()
        carried: dict[str, set[int]] = {}

        def ready() -> bool:
            carried.update({name: self.carried(name) for name, _, _ in ACCOUNTS})
            everything = set().union(*carried.values())
            return all(carried.values()) and self.ticked_after(everything, moment) == everything

        if until(ready, START_TIMEOUT_S) is None:
            raise RuntimeError(f"the feeds never all streamed: {carried}; logs in {self.workdir}")
        return carried


def stack_seed() -> dict[str, int]:
    """Migrate, the accounts with kitesim's tokens (one small connection each), NIFTY watched ±2 strikes
    on its nearest expiry, the first plan stored. Django starts here, on the stack's environment."""
    import django  # Django starts only in the scenario's own interpreter

    django.setup()
    from django.core.management import call_command

    from ticks.clocks import market_now
    from ticks.models import BrokerAccount, WatchSpec
    from ticks.services import broker_account_set_token, instruments_refresh_from_kite

    call_command("migrate", verbosity=0)
    ids = {}
    for api_key, secret, token in ACCOUNTS:
        account = BrokerAccount(
            name=api_key, api_key=api_key, api_secret=secret, max_connections=1,
            tokens_per_connection=TOKENS_PER_CONNECTION,
        )  # fmt: skip
        ids[api_key] = broker_account_set_token(
            account=account, access_token=token, issued_at=market_now()
        ).pk
    instruments_refresh_from_kite(account=BrokerAccount.objects.get(name=ACCOUNTS[0][0]))
    WatchSpec.objects.create(underlying="NIFTY", expiry_count=1, strikes_around_atm=2, mode="full")
    return ids


def until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``predicate`` held, polling every POLL_S; None when ``timeout`` passed first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(POLL_S)
    return None


def scratch(prefix: str) -> Path:
    """A directory for the scenario's logs and database, named on stderr: a crash leaves it for reading."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    print(f"logs in {path}", file=sys.stderr)
    return path


def scratch_done(path: Path, ok: bool) -> str:
    """Remove the logs of a scenario that passed; otherwise the words that point to them."""
    if ok:
        shutil.rmtree(path, ignore_errors=True)
        return ""
    return f"; logs in {path}"


# --- the scenarios (in the child) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recovery:
    """When frames flowed again after a moment, and which carried tokens never ticked after it."""

    seconds: float | None
    lost: set[int]


@dataclass(frozen=True, slots=True)
class Fault:
    started: float  # monotonic, just before the injection
    moment: float  # kitesim's clock just after it: a tick stamped later was made after the fault
    answer: dict[str, Any]


def inject(stack: FeedStack, path: str, body: dict[str, Any]) -> Fault:
    started = time.monotonic()
    answer = stack.sim(path, body)
    return Fault(started, stack.sim_now(), answer)


def recovery_watch(stack: FeedStack, tokens: set[int], fault: Fault) -> Recovery:
    """Seconds from the fault until a tick made after it arrives on any of ``tokens``, then SETTLE_S more
    for all of them to tick."""
    if until(lambda: bool(stack.ticked_after(tokens, fault.moment)), RECOVER_TIMEOUT_S) is None:
        return Recovery(None, tokens)
    seconds = time.monotonic() - fault.started
    until(lambda: stack.ticked_after(tokens, fault.moment) == tokens, SETTLE_S)
    return Recovery(seconds, tokens - stack.ticked_after(tokens, fault.moment))


def own_tokens(carried: dict[str, set[int]], account: str) -> set[int]:
    """The tokens only ``account`` carries: the index and future ride on every shard, so another account's
    ticks on them would say nothing of this one's recovery."""
    others = set().union(*(tokens for name, tokens in carried.items() if name != account))
    return carried[account] - others


def _row(scenario: str, recovery: Recovery, ok: bool, detail: str) -> Outcome:
    return Outcome(
        scenario=f"feed {scenario}",
        recovered=ok and recovery.seconds is not None and not recovery.lost,
        seconds_to_recover=None if recovery.seconds is None else round(recovery.seconds, 2),
        orders_lost=None,
        orders_duplicated=None,
        ticks_lost=len(recovery.lost),
        detail=detail,
    )


def scenario_drop(stack: FeedStack) -> Outcome:
    """kitesim aborts the account's socket (1006, no close frame): the feed reconnects with backoff."""
    account = ACCOUNTS[0][0]
    tokens = own_tokens(stack.streaming(), account)
    holder = stack.holder(account)
    closed = stack.counter("feed_reconnects_total", account=account, reason="closed")
    fault = inject(stack, "drop", {"api_key": account})
    dropped = fault.answer["dropped"]
    recovery = recovery_watch(stack, tokens, fault)
    reconnects = stack.counter("feed_reconnects_total", account=account, reason="closed") - closed
    same = stack.holder(account) == holder
    detail = (
        f"{dropped} socket(s) of {account} aborted; {reconnects:g} reconnect(s) counted (reason closed), "
        f"same feed task {'kept' if same else 'NOT kept'} its lease; {len(tokens)} tokens of its own"
    )
    return _row("drop", recovery, dropped >= 1 and reconnects >= 1 and same, detail)


def scenario_stall(stack: FeedStack) -> Outcome:
    """kitesim goes silent (no ticks, no heartbeats) with sockets open: the watchdog must reconnect."""
    account = ACCOUNTS[0][0]
    tokens = own_tokens(stack.streaming(), account)
    before = set(stack.sim("state")["connections"])
    silent = stack.counter("feed_reconnects_total", account=account, reason="silent")
    fault = inject(stack, "faults", {"stall_seconds": STALL_S})
    noticed = until(lambda: not before & set(stack.sim("state")["connections"]), RECOVER_TIMEOUT_S)
    recovery = recovery_watch(stack, tokens, fault)
    reconnects = stack.counter("feed_reconnects_total", account=account, reason="silent") - silent
    heard = "never" if noticed is None else f"{noticed:.1f} s"
    detail = (
        f"kitesim silent {STALL_S:g} s; the watchdog (2 s) closed every stalled socket after {heard}, "
        f"{reconnects:g} reconnect(s) of {account} counted (reason silent); ticks resume when the stall "
        f"ends; {len(tokens)} tokens of its own"
    )
    return _row("stall", recovery, noticed is not None and reconnects >= 1, detail)


def scenario_403(stack: FeedStack) -> Outcome:
    """Every upgrade answered 403 and the account's socket dropped: the account goes token_expired and its
    feed stops; the operator's new login (the token valid again) brings it back."""
    from ticks.clocks import market_now  # Django runs in this interpreter only
    from ticks.models import BrokerAccount
    from ticks.services import broker_account_set_token

    name, _, token = ACCOUNTS[0]
    tokens = own_tokens(stack.streaming(), name)
    fault = inject(stack, "faults", {"reject_upgrades_403": True})
    stack.sim("drop", {"api_key": name})
    health = lambda: BrokerAccount.objects.get(name=name).health  # noqa: E731
    expired = since(fault, until(lambda: health() == BrokerAccount.Health.TOKEN_EXPIRED, RECOVER_TIMEOUT_S))
    stopped = since(fault, until(lambda: stack.holder(name) is None, RECOVER_TIMEOUT_S))
    login = inject(stack, "faults", {"reject_upgrades_403": False})
    account = BrokerAccount.objects.get(name=name)
    broker_account_set_token(account=account, access_token=token, issued_at=market_now())
    recovery = recovery_watch(stack, tokens, login)
    streams = lambda: stack.holder(name) is not None and bool(stack.carried(name))  # noqa: E731
    back = since(login, until(streams, RECOVER_TIMEOUT_S))
    detail = (
        f"{name}: token_expired {_seconds(expired)} and its feed gone (lease released) {_seconds(stopped)} "
        f"after the 403s began; time to recover counted from the new login (token valid again) to ticks on "
        f"its {len(tokens)} former tokens; its own feed streaming again {_seconds(back)} after the login"
    )
    return _row("403", recovery, expired is not None and stopped is not None and back is not None, detail)


def scenario_malformed(stack: FeedStack) -> Outcome:
    """The next frames arrive truncated or garbled: each is counted and dropped, the socket stays up."""
    account = ACCOUNTS[0][0]
    carried = stack.streaming()
    tokens = set().union(*carried.values())
    holder = stack.holder(account)
    errors = stack.counter("feed_decode_errors_total")
    reconnects = stack.counter("feed_reconnects_total")
    fault = inject(stack, "faults", {"malformed_frames_next": MALFORMED_FRAMES})
    counted = until(lambda: stack.counter("feed_decode_errors_total") - errors >= MALFORMED_FRAMES, 30)
    recovery = recovery_watch(stack, tokens, fault)
    decoded = stack.counter("feed_decode_errors_total") - errors
    reconnected = stack.counter("feed_reconnects_total") - reconnects
    same = stack.holder(account) == holder
    detail = (
        f"{MALFORMED_FRAMES} garbled frames sent, {decoded:g} decode errors counted, {reconnected:g} "
        f"reconnects, lease holder {'unchanged' if same else 'CHANGED'}; ticks lost over all "
        f"{len(tokens)} tokens of the fleet"
    )
    return _row("malformed", recovery, counted is not None and reconnected == 0 and same, detail)


def since(fault: Fault, waited: float | None) -> float | None:
    """Seconds from the fault to now, when the wait that just ended succeeded."""
    return None if waited is None else time.monotonic() - fault.started


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


BODIES: dict[str, Callable[[FeedStack], Outcome]] = {
    "drop": scenario_drop,
    "stall": scenario_stall,
    "403": scenario_403,
    "malformed": scenario_malformed,
}


def main(scenario: str) -> None:
    exit_on_sigterm()
    path = scratch(f"chaos-feed-{scenario}-")
    stack = FeedStack(path)
    try:
        stack.start()
        stack.start_worker("feeds", "feeds,default", beat=True)
        outcome = BODIES[scenario](stack)
    finally:
        stack.close()
    outcome = replace(outcome, detail=outcome.detail + scratch_done(path, outcome.recovered))
    print(json.dumps(asdict(outcome)))


if __name__ == "__main__":
    main(sys.argv[1])
