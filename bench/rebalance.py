"""Tick-driven rebalancing on a trending kitesim market: how long from the tick that crosses an ATM band
to the first tick of a strike the re-plan added, and whether ATM ± N stays streamed meanwhile.

Starts kitesim (``--path trend``) and one Celery worker (queues feeds and default, no beat: only the
feeds' own asks re-plan) as their own processes, on a bench SQLite file and Redis database 12
(BENCH_REDIS_URL, flushed). Two broker accounts; NIFTY, BANKNIFTY and SENSEX watched at ATM ± 10 for
their two nearest expiries (FEED_STRIKE_MARGIN more on each side). Two rounds:

1. **Kite's pace** (speed 1): NIFTY trends at 450 points a minute, turning every 2 minutes, so the window
   re-centres every few seconds. Target: crossing -> first new tick p99 < 1 s.
2. **kitesim at speed 60**: 60 points a simulated minute (NIFTY 1.2 strikes a second of real time, SENSEX
   2). Target: no gap at all: every sample (every 0.25 s) finds ATM ± 10 of each underlying's nearest expiry
   subscribed.

The latency is the feeds' own record (``ticks.feeds.rebalance.LATENCY_KEY``: host receive time of the
crossing frame to host receive time of the first frame with an added token, the earliest account per plan
version). Coverage is judged from the feeds' subscription reports (FEED_REPORT_S = 0.25 s here), so a
sample can lag the truth by one report.

    .venv/bin/python bench/rebalance.py [--seconds-kite 150] [--seconds-fast 60]
"""

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKDIR = ROOT / "var" / f"bench-rebalance-{os.getpid()}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
ACCOUNTS = [("demo", "demosecret", "demotoken"), ("alt", "altsecret", "alttoken")]
UNDERLYINGS = ("NIFTY", "BANKNIFTY", "SENSEX")
STRIKES = 10
SAMPLE_S = 0.25


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


KITESIM_PORT = _free_port()
KITE_ROOT = f"http://127.0.0.1:{KITESIM_PORT}"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "tickerproject.settings.base",
    "DATABASE_URL": f"sqlite:///{WORKDIR / 'db.sqlite3'}",
    "REDIS_URL": REDIS_URL,
    "KITE_ROOT": KITE_ROOT,
    "MARKET_CLOCK": "kitesim",
    "FEED_CONTROL_CHANNEL": f"bench-rebalance-{os.getpid()}:feeds:control",
    "FEED_REPORT_S": str(SAMPLE_S),
    "LOG_LEVEL": "WARNING",
}
WORKDIR.mkdir(parents=True, exist_ok=True)
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from bench.processes import Process, answers  # noqa: E402
from ticks.clocks import market_now  # noqa: E402
from ticks.feeds.rebalance import LATENCY_KEY  # noqa: E402
from ticks.feeds.strikes import strikes_around  # noqa: E402
from ticks.models import BrokerAccount, Instrument, WatchSpec  # noqa: E402
from ticks.selectors import OPTION_TYPES, chain_strikes, latest_ticks, underlying_index  # noqa: E402
from ticks.services import broker_account_set_token, instruments_refresh_from_kite  # noqa: E402
from workers.control import feed_status_key  # noqa: E402
from workers.selectors import feed_plan_current  # noqa: E402
from workers.services import feed_plan_refresh, feed_supervise, redis_client  # noqa: E402


@dataclass(frozen=True)
class Round:
    name: str
    speed: float
    points_per_min: float
    reverse_minutes: int
    seconds: float


@dataclass
class Seen:
    latencies: list[float] = field(default_factory=list)  # seconds, one per tick-driven plan
    samples: int = 0
    uncovered: int = 0
    longest_gap_s: float = 0.0
    strikes_walked: float = 0.0
    plans: int = 0  # plan versions made while observing


@dataclass(frozen=True)
class Chain:
    index: int  # the price token
    expiry: object
    strikes: list[float]
    step: float


def _prepare() -> None:
    connections.close_all()  # an open connection would keep the deleted file alive
    (WORKDIR / "db.sqlite3").unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    redis_client().flushdb()
    for name, secret, token in ACCOUNTS:
        account = BrokerAccount(name=name, api_key=name, api_secret=secret)
        broker_account_set_token(account=account, access_token=token, issued_at=market_now())
    instruments_refresh_from_kite(account=BrokerAccount.objects.get(name="demo"))
    for underlying in UNDERLYINGS:
        WatchSpec.objects.create(
            underlying=underlying, expiry_count=2, strikes_around_atm=STRIKES, mode="full"
        )


def _kitesim(spec: Round) -> Process:
    command = [
        sys.executable,
        "manage.py",
        "kitesim",
        "--port",
        str(KITESIM_PORT),
        "--speed",
        str(spec.speed),
    ]
    command += ["--path", "trend", "--trend-points-per-min", str(spec.points_per_min)]
    command += ["--trend-reverse-minutes", str(spec.reverse_minutes)]
    command += [arg for name, secret, token in ACCOUNTS for arg in ("--account", f"{name}:{secret}:{token}")]
    return Process(f"kitesim-{spec.name}", command, lambda: answers(f"{KITE_ROOT}/_sim/state"), ENV, WORKDIR)


def _worker(spec: Round) -> Process:
    log = WORKDIR / f"worker-{spec.name}.log"
    command = [sys.executable, "-m", "celery", "-A", "tickerproject", "worker", "-Q", "feeds,default"]
    command += [
        "-c",
        "4",
        "-O",
        "fair",
        "--prefetch-multiplier=1",
        "-n",
        f"bench-{spec.name}@%h",
        "--loglevel=INFO",
    ]
    return Process(
        f"worker-{spec.name}", command, lambda: log.exists() and "ready." in log.read_text(), ENV, WORKDIR
    )


def _chains() -> dict[str, Chain]:
    plan = feed_plan_current()
    chains = {}
    for underlying in UNDERLYINGS:
        expiry = min(
            plan.assignments.filter(underlying=underlying)
            .exclude(expiry=None)
            .values_list("expiry", flat=True)
        )
        strikes = [float(s) for s in chain_strikes(underlying=underlying, expiry=expiry)]
        index = underlying_index(underlying=underlying).instrument_token
        chains[underlying] = Chain(index, expiry, strikes, float(np.median(np.diff(strikes))))
    return chains


def _window(underlying: str, chain: Chain, price: float) -> set[int]:
    strikes = strikes_around(chain.strikes, price, STRIKES)
    rows = Instrument.objects.filter(
        name=underlying, expiry=chain.expiry, strike__in=strikes, instrument_type__in=OPTION_TYPES
    )
    return set(rows.values_list("instrument_token", flat=True))


def _streamed(client: object) -> set[int]:
    keys = [feed_status_key(pk) for pk in BrokerAccount.objects.values_list("pk", flat=True)]
    reports = [json.loads(raw) for raw in client.mget(keys) if raw]
    return {token for report in reports for tokens in report["connections"].values() for token in tokens}


def _prices(chains: dict[str, Chain]) -> dict[str, float]:
    rows = latest_ticks(tokens=[chain.index for chain in chains.values()])
    by_token = {int(row["instrument_token"]): float(row["last_price"]) for row in rows}
    return {underlying: by_token[chain.index] for underlying, chain in chains.items()}


def _observe(spec: Round, seen: Seen) -> None:
    client = redis_client()
    chains = _chains()
    first = _prices(chains)
    first_version = feed_plan_current().version
    gap_started: float | None = None
    deadline = time.monotonic() + spec.seconds
    while time.monotonic() < deadline:
        prices = _prices(chains)
        streamed = _streamed(client)
        wanted = set().union(*(_window(u, chains[u], prices[u]) for u in UNDERLYINGS))
        now = time.monotonic()
        seen.samples += 1
        if wanted <= streamed:
            gap_started = None
        else:
            seen.uncovered += 1
            gap_started = now if gap_started is None else gap_started
            seen.longest_gap_s = max(seen.longest_gap_s, now - gap_started + SAMPLE_S)
        seen.strikes_walked = max(
            seen.strikes_walked, abs(prices["NIFTY"] - first["NIFTY"]) / chains["NIFTY"].step
        )
        time.sleep(SAMPLE_S)
    by_version: dict[int, float] = {}
    for raw in client.lrange(LATENCY_KEY, 0, -1):
        record = json.loads(raw)
        by_version[record["version"]] = min(by_version.get(record["version"], np.inf), record["seconds"])
    seen.latencies = sorted(by_version.values())
    seen.plans = feed_plan_current().version - first_version


def _run(spec: Round) -> Seen:
    kitesim = _kitesim(spec)
    worker = None
    try:
        _prepare()
        feed_plan_refresh(client=redis_client())
        worker = _worker(spec)
        client = redis_client()
        feed_supervise(client=client)
        chains = _chains()
        deadline = time.monotonic() + 60
        while latest_ticks(tokens=[c.index for c in chains.values()]).size < len(chains):
            if time.monotonic() > deadline:
                raise SystemExit(f"no ticks; see {WORKDIR}")
            feed_supervise(client=client)
            time.sleep(0.25)
        time.sleep(3)  # the feeds' first reports
        seen = Seen()
        _observe(spec, seen)
        return seen
    finally:
        if worker is not None:
            worker.stop()
        kitesim.stop()


def _report(spec: Round, seen: Seen) -> None:
    latencies = np.array(seen.latencies) * 1000
    print(
        f"\n{spec.name}: kitesim speed {spec.speed:g}, NIFTY {spec.points_per_min:g} points a simulated minute, "
        f"{spec.seconds:g} s"
    )
    print(f"  NIFTY walked {seen.strikes_walked:.1f} strikes; {seen.plans} plan versions")
    if latencies.size:
        p50, p99 = np.percentile(latencies, [50, 99])
        print(
            f"  crossing -> first new tick: n={latencies.size}, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
            f"max {latencies.max():.0f} ms"
        )
    else:
        print("  crossing -> first new tick: no tick-driven plan was timed")
    print(
        f"  ATM ± {STRIKES} of the nearest expiries covered in {seen.samples - seen.uncovered} of {seen.samples} "
        f"samples; longest gap {seen.longest_gap_s:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds-kite", type=float, default=150)
    parser.add_argument("--seconds-fast", type=float, default=60)
    args = parser.parse_args()
    kite = Round("kite-pace", 1, 450, 2, args.seconds_kite)
    fast = Round("speed-60", 60, 60, 20, args.seconds_fast)
    results = {spec.name: (spec, _run(spec)) for spec in (kite, fast)}
    for spec, seen in results.values():
        _report(spec, seen)
    kite_p99 = (
        float(np.percentile(results["kite-pace"][1].latencies, 99))
        if results["kite-pace"][1].latencies
        else float("inf")
    )
    fast_seen = results["speed-60"][1]
    print("\nTargets:")
    print(
        f"  Kite's pace: p99 {kite_p99 * 1000:.0f} ms vs < 1000 ms: {'met' if kite_p99 < 1 else 'MISSED'} "
        f"(ratio {kite_p99:.2f} of the target)"
    )
    print(
        f"  speed 60: {fast_seen.uncovered} uncovered samples vs 0: {'met' if fast_seen.uncovered == 0 else 'MISSED'}"
    )
    print(f"Logs: {WORKDIR}")


if __name__ == "__main__":
    main()
