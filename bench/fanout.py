"""Live chains to many browsers: the web's CPU per delivered delta, and the deltas' latency.

Starts kitesim, a Celery feeds worker and the web (uvicorn with --workers and --ws-max-size, as in the
Procfile) as their own process groups (bench/processes.py) on a bench SQLite file and Redis database 12
(BENCH_REDIS_URL, flushed; the channel layer and the feeds' control channel get a prefix of their own,
since Redis pub/sub ignores the database number). Then for each N in --clients, --repeat times, N
WebSocket clients (bench/fanout_clients.py, each offering permessage-deflate as browsers do, each
subscribed to one of 4 NIFTY chains) in client processes of their own process groups, at most
--per-process clients each; for the N in --slow once more with one more client that never reads.

Per round, the headline: the web's CPU seconds per delta delivered (utime + stime from /proc/<pid>/stat
of every process in the web's group, over the window, divided by the deltas the clients received in
it) and its ratio to the 0.05 ms target; beside it the latency from the feed receiving a frame to the
client receiving the delta, p50/p99, for the newest row of each delta (how fresh the view is) and the
oldest (the longest a row waited for conflation); deltas/s; the web's CPU per process and RSS; the
clients' CPU (their process groups, apart); the machine's busy share and load average; gaps in ``seq``
per connection (there must be none); connections that failed; the slow client's fate. With --profile,
the web runs bench/fanout_profile.py's application, cProfile in each worker over each window (signals
at its edges), and the functions with the most self and total time are printed; the round's own
figures then include cProfile's cost. With --proxy, two single-process webs (their own process groups,
ports P+1 and P+2) behind Debian's nginx with deploy/nginx/ticker.conf rendered as deploy/ does (TLS on
P+4; bench/fanout_proxy.py): the clients connect through nginx, and each round also prints each web's
share of the connections, its CPU and CPU per delta, and nginx's CPU apart. BENCH_PORT_BASE=P puts
kitesim on port P and the web on P+1 (free ports otherwise).

    BENCH_REDIS_URL=redis://127.0.0.1:6379/12 .venv/bin/python bench/fanout.py [--seconds 8]
        [--clients 100,500,1000] [--repeat 2] [--slow 100] [--workers 2]
        [--web-args "--ws-per-message-deflate false"] [--profile] [--proxy]
"""

import argparse
import json
import math
import os
import pstats
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.asgi_server import free_port  # noqa: E402 - needs ROOT on the path


def _port(offset: int) -> int:
    """BENCH_PORT_BASE + offset when set (a range of one's own on a shared machine), else a free port."""
    base = os.environ.get("BENCH_PORT_BASE")
    return int(base) + offset if base else free_port()


WORKDIR = ROOT / "var" / f"bench-fanout-{os.getpid()}"
KITE_ROOT = f"http://127.0.0.1:{_port(0)}"
WEB_PORT = _port(1)
PREFIX = f"benchfanout{os.getpid()}"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "bench.fanout_settings",
    "BENCH_CHANNEL_PREFIX": PREFIX,
    "FEED_CONTROL_CHANNEL": f"{PREFIX}:feeds:control",
    "DATABASE_URL": f"sqlite:///{WORKDIR / 'db.sqlite3'}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
    "KITE_ROOT": KITE_ROOT,
    "MARKET_CLOCK": "kitesim",  # the plan follows kitesim's trading day, whatever the host's
    "LOG_LEVEL": "WARNING",
    "BENCH_PROFILE_DIR": str(WORKDIR),
    # Up to 1,000 clients with one key from one address, each fetching a ticket: past the stream's
    # connection caps and the API's per-key rate (README "Live stream", "Limits").
    "STREAM_MAX_CONNECTIONS_PER_KEY": "5000",
    "STREAM_MAX_CONNECTIONS_PER_IP": "5000",
    "THROTTLE_KEY_RATE": "100000/min",
}
WORKDIR.mkdir(parents=True, exist_ok=True)
PROXY_ENV = {**ENV, "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,ticker.bench"}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from bench.fanout_proxy import ProxiedWebs  # noqa: E402
from bench.processes import Process, answers  # noqa: E402
from bench.seed import nifty_watched  # noqa: E402
from tests.waiting import until  # noqa: E402
from ticks.models import ClientApiKey  # noqa: E402
from ticks.selectors import chain_expiries  # noqa: E402
from workers.services import feed_supervise, redis_client  # noqa: E402

TARGET_MS_PER_DELTA = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_S = 2.0
PROFILE_TOP = 20  # after the snapshots, before the window: their aftermath is not the steady state


def _prepare() -> list[str]:
    """A fresh database and Redis database, the demo account, NIFTY's 4 nearest chains watched."""
    nifty_watched(WORKDIR, expiry_count=4, strikes_around_atm=10)
    return [f"NIFTY:{expiry.isoformat()}" for expiry in chain_expiries(underlying="NIFTY")[:4]]


def _worker_ready() -> bool:
    log = WORKDIR / "worker.log"
    return log.exists() and "ready." in log.read_text()


def _group_cpu(pgid: int) -> dict[int, float]:
    """CPU seconds (user + system) of every live process in the group, by pid."""
    cpu = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid:
            cpu[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return cpu


def _rss_mb(pgid: int) -> float:
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[21])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or waiting on I/O) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def _spent(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    """CPU spent per pid between two samples (a pid gone by the second sample is left out)."""
    return {pid: after[pid] - before.get(pid, 0.0) for pid in after}


@dataclass
class Outcome:
    """One round, as printed and summarised."""

    clients: int
    ms_per_delta: float
    p50: float
    p99: float


class ClientProcesses:
    """The round's client processes (bench/fanout_clients.py), each its own process group."""

    def __init__(
        self,
        n: int,
        chains: list[str],
        key: str,
        args: argparse.Namespace,
        slow: bool,
        proxy: ProxiedWebs | None,
    ) -> None:
        url = f"ws://127.0.0.1:{WEB_PORT}/ws/stream/" if proxy is None else proxy.url
        per_process = args.per_process
        script = str(ROOT / "bench" / "fanout_clients.py")
        count = math.ceil(n / per_process)
        self.popens = []
        for i in range(count):
            share = n // count + (1 if i < n % count else 0)
            first = sum(n // count + (1 if j < n % count else 0) for j in range(i))
            command = [sys.executable, script, url, ",".join(chains), "--count", str(share)]
            command += ["--api", f"http://127.0.0.1:{WEB_PORT}", "--key", key]
            command += ["--first", str(first), "--slow", str(int(slow and i == 0))]
            command += [] if proxy is None else proxy.client_options()
            self.popens.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    command,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )

    def connected(self) -> tuple[int, float]:
        """Snapshots received and the longest any process took to get its clients' snapshots."""
        lines = [json.loads(self._line(popen, "connected")) for popen in self.popens]
        return sum(line["snapshots"] for line in lines), max(line["seconds"] for line in lines)

    def go(self, seconds: float) -> None:
        for popen in self.popens:
            popen.stdin.write(f"go {seconds}\n")
            popen.stdin.flush()

    def results(self) -> list[dict[str, object]]:
        results = [json.loads(self._line(popen, "result")) for popen in self.popens]
        for popen in self.popens:
            popen.wait(30)
        return results

    def cpu(self) -> dict[int, float]:
        return {pid: s for popen in self.popens for pid, s in _group_cpu(popen.pid).items()}

    def kill(self) -> None:
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
                popen.wait(10)

    @staticmethod
    def _line(popen: subprocess.Popen[str], kind: str) -> str:
        line = popen.stdout.readline()
        if not line.startswith(f"{kind} "):
            raise SystemExit(f"a client process said {line!r} where {kind!r} was due (exit {popen.poll()})")
        return line.split(" ", 1)[1]


def _round(
    n: int,
    run: int,
    chains: list[str],
    key: str,
    args: argparse.Namespace,
    webs: list[int],
    slow: bool,
    proxy: ProxiedWebs | None = None,
) -> Outcome:
    if proxy is not None:
        proxy.access_log_rotate()
    clients = ClientProcesses(n, chains, key, args, slow, proxy)
    try:
        snapshots, connected_in = clients.connected()
        time.sleep(SETTLE_S)
        load = Path("/proc/loadavg").read_text().split()[:3]
        web0, clients0, busy0, t0 = _webs_cpu(webs), clients.cpu(), _machine_busy_seconds(), time.monotonic()
        nginx0 = _group_cpu(proxy.nginx_pid) if proxy is not None else {}
        profiled = [pid for web in webs for pid in _profile_start(web)] if args.profile else []
        clients.go(args.seconds)
        time.sleep(args.seconds)
        wall = time.monotonic() - t0
        web_cpu, client_cpu = _spent(web0, _webs_cpu(webs)), _spent(clients0, clients.cpu())
        nginx_cpu = sum(_spent(nginx0, _group_cpu(proxy.nginx_pid)).values()) if proxy is not None else 0.0
        busy = _machine_busy_seconds() - busy0
        rss = sum(_rss_mb(web) for web in webs)
        profiles = _profile_stop(profiled, f"{n}{'-slow' if slow else ''}-{run}")
        results = clients.results()
    finally:
        clients.kill()
    newest = np.concatenate([np.array(r["newest_ms"], dtype=float) for r in results])
    oldest = np.concatenate([np.array(r["oldest_ms"], dtype=float) for r in results])
    deltas = sum(r["deltas"] for r in results)
    gaps = [g for r in results for g in r["gaps"]]
    failures: dict[str, int] = {}
    for result in results:
        for reason, count in result["failures"].items():
            failures[reason] = failures.get(reason, 0) + count
    web_total = sum(web_cpu.values())
    ms_per_delta = web_total / deltas * 1000 if deltas else math.inf
    p50, p99 = (np.percentile(newest, 50), np.percentile(newest, 99)) if newest.size else (math.nan,) * 2
    label = f"{n:>5} clients{' + 1 slow' if slow else ''} run {run}"
    per_process = "+".join(f"{s / wall * 100:.0f}" for s in sorted(web_cpu.values(), reverse=True) if s > 0)
    print(
        f"{label}: web {ms_per_delta:.4f} ms CPU/delta = {ms_per_delta / TARGET_MS_PER_DELTA:.2f}x the "
        f"{TARGET_MS_PER_DELTA} ms target | newest row p50 {p50:6.1f} p99 {p99:7.1f} ms, oldest row p99 "
        f"{np.percentile(oldest, 99) if oldest.size else math.nan:7.1f} ms | {deltas / wall:6.0f} deltas/s"
    )
    print(
        f"{'':8}web {web_total / wall * 100:3.0f}% of a core ({per_process or '0'} per process), "
        f"RSS {rss:4.0f} MB | clients {sum(client_cpu.values()) / wall * 100:3.0f}% "
        f"({len(clients.popens)} process(es), apart) | machine {busy / wall * 100:3.0f}% of "
        f"{os.cpu_count()} cores, load {' '.join(load)} | seq gaps {sum(gaps)} on "
        f"{sum(1 for g in gaps if g)} of {len(gaps)} connections | {snapshots} snapshots in "
        f"{connected_in:.1f} s{', failed: ' + str(failures) if failures else ''}"
    )
    for profile in profiles:
        _print_profile(profile)
    if proxy is not None:
        _print_spread(proxy, webs, web_cpu, deltas, nginx_cpu, wall)
    if slow:
        print(f"{'':8}the slow client: {'; '.join(s for r in results for s in r['slow'])}")
    return Outcome(n, ms_per_delta, float(p50), float(p99))


def _webs_cpu(webs: list[int]) -> dict[int, float]:
    return {pid: seconds for web in webs for pid, seconds in _group_cpu(web).items()}


def _print_spread(
    proxy: ProxiedWebs, webs: list[int], web_cpu: dict[int, float], deltas: int, nginx_cpu: float, wall: float
) -> None:
    """Each web's share of the connections (nginx's access log, written as they closed) and its CPU
    per delta, taking its deltas as that share of all; and nginx's own CPU per delta, apart."""
    split = proxy.connections_by_web()
    served = sum(split.values()) or 1
    parts = []
    for web, port in zip(webs, proxy.web_ports, strict=True):
        cpu = sum(seconds for pid, seconds in web_cpu.items() if pid in _group_cpu(web) or pid == web)
        share = split[port] / served
        per_delta = cpu / (deltas * share) * 1000 if deltas and share else math.inf
        parts.append(
            f"web :{port} {split[port]} connections, {cpu / wall * 100:.0f}% of a core, {per_delta:.4f} ms/delta"
        )
    nginx = nginx_cpu / deltas * 1000 if deltas else math.inf
    print(f"{'':8}{' | '.join(parts)} | nginx {nginx_cpu / wall * 100:.0f}% of a core, {nginx:.4f} ms/delta")


def _profile_start(web: int) -> list[int]:
    """Start cProfile in each web worker (bench/fanout_profile.py, SIGUSR1); their pids. The workers
    are uvicorn's spawned children (not multiprocessing's resource tracker, whom SIGUSR1 would end),
    or uvicorn itself when it runs one."""
    pids = sorted(
        pid for pid in _group_cpu(web) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    pids = pids or [web]
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    return pids


def _profile_stop(pids: list[int], name: str) -> list[Path]:
    """Stop the profilers (SIGUSR2: each writes its statistics) and name their files after the round."""
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    paths = []
    for pid in pids:
        written = WORKDIR / f"profile-{pid}.pstats"
        until(written.exists, timeout=60)
        time.sleep(0.5)  # dump_stats writes the file in one go, but give it the time to finish
        paths.append(written.rename(WORKDIR / f"profile-{name}-{pid}.pstats"))
    return paths


def _print_profile(path: Path, top: int = PROFILE_TOP) -> None:
    """The functions with the most time of their own (self) and under them (total), in percent of
    the profiled thread's time."""
    stats = pstats.Stats(str(path)).stats  # (file, line, function) -> (calls, ncalls, self, total, callers)
    total = sum(entry[2] for entry in stats.values()) or 1.0
    by_own = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    by_under = sorted(stats.items(), key=lambda item: -item[1][3])[:top]
    print(f"{'':8}profile {path.name} ({total:.2f} s profiled): self | total")
    for (a, a_s), (b, b_s) in zip(by_own, by_under, strict=False):
        print(
            f"{'':10}{a_s[2] / total * 100:5.1f} % {_where(a):68} | {b_s[3] / total * 100:5.1f} % {_where(b)}"
        )


def _where(key: tuple[str, int, str]) -> str:
    file, line, function = key
    return f"{function} ({Path(file).name}:{line})"[:68]


def _summary(outcomes: list[Outcome]) -> None:
    print("\nclients  web ms CPU/delta per run (x target)              newest-row p50 / p99 ms per run")
    for n in dict.fromkeys(o.clients for o in outcomes):
        runs = [o for o in outcomes if o.clients == n]
        costs = "  ".join(f"{o.ms_per_delta:.4f} ({o.ms_per_delta / TARGET_MS_PER_DELTA:.1f}x)" for o in runs)
        latency = "  ".join(f"{o.p50:.0f}/{o.p99:.0f}" for o in runs)
        print(f"{n:>7}  {costs:48} {latency}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window per round")
    parser.add_argument("--clients", default="100,500,1000")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per client count, each printed")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_WORKERS", "2")),
        help="uvicorn worker processes, as the Procfile's WEB_WORKERS (default 2)",
    )
    parser.add_argument("--web-args", default="", help='more uvicorn options, e.g. "--ws wsproto"')
    parser.add_argument("--profile", action="store_true", help="cProfile each web worker over each window")
    parser.add_argument("--per-process", type=int, default=250, help="clients per client process")
    parser.add_argument(
        "--proxy",
        action="store_true",
        help="two single-process webs behind nginx with deploy/'s config (bench/fanout_proxy.py)",
    )
    parser.add_argument(
        "--slow",
        type=lambda text: {int(n) for n in text.split(",") if n},
        default={100},
        help="client counts to run once more with one client that never reads",
    )
    args = parser.parse_args()
    procs: list[Process] = []
    proxy: ProxiedWebs | None = None
    try:
        chains = _prepare_and_start(procs, args)
        if args.proxy:
            ports = [WEB_PORT, _port(2), _port(3), _port(4)]
            proxy = ProxiedWebs(WORKDIR, PROXY_ENV, ports, _application(args), shlex.split(args.web_args))
            webs = [web.popen.pid for web in proxy.webs]
        else:
            webs = [procs[-1].popen.pid]
        key = _api_key()
        shape = "2 webs of 1 process behind nginx" if proxy else f"{args.workers} worker(s)"
        print(
            f"4 chains ({', '.join(chains)}), one feed, one delta per {ENV.get('STREAM_FLUSH_MS', 100)} ms "
            f"per connection on average (burst 2); web: uvicorn, {shape} "
            f"{args.web_args}; {args.seconds:.0f} s windows"
        )
        outcomes = []
        for n in (int(c) for c in args.clients.split(",")):
            outcomes += [
                _round(n, run, chains, key, args, webs, slow=False, proxy=proxy)
                for run in range(1, args.repeat + 1)
            ]
            if n in args.slow:
                _round(n, 1, chains, key, args, webs, slow=True, proxy=proxy)
        _summary(outcomes)
    finally:
        if proxy is not None:
            proxy.stop()
        for proc in reversed(procs):
            proc.kill()


def _prepare_and_start(procs: list[Process], args: argparse.Namespace) -> list[str]:
    python = sys.executable
    port = KITE_ROOT.rsplit(":", 1)[1]
    command = [python, "manage.py", "kitesim", "--port", port, "--seed", "7"]
    procs.append(Process("kitesim", command, lambda: answers(f"{KITE_ROOT}/_sim/state"), ENV, WORKDIR))
    chains = _prepare()
    _start_rest(procs, args)
    feed_supervise(client=redis_client())
    until(lambda: redis_client().hlen("greeks:latest") > 50, timeout=60)
    return chains


def _application(args: argparse.Namespace) -> str:
    return "bench.fanout_profile:application" if args.profile else "tickerproject.asgi:application"


def _start_rest(procs: list[Process], args: argparse.Namespace) -> None:
    """The feeds worker and (without --proxy) the web, after kitesim and the database are ready."""
    python = sys.executable
    command = [python, "-m", "celery", "-A", "tickerproject", "worker", "-Q", "feeds", "-c", "2"]
    command += ["-O", "fair", "--prefetch-multiplier=1", "-n", f"{PREFIX}@%h", "--loglevel=INFO"]
    procs.append(Process("worker", command, _worker_ready, ENV, WORKDIR))
    if args.proxy:
        return
    command = [
        python,
        "-m",
        "uvicorn",
        _application(args),
        "--port",
        str(WEB_PORT),
        "--workers",
        str(args.workers),
    ]
    command += ["--ws-max-size", "65536", "--log-level", "warning", *shlex.split(args.web_args)]
    procs.append(
        Process("web", command, lambda: answers(f"http://127.0.0.1:{WEB_PORT}/healthz"), ENV, WORKDIR)
    )


def _api_key() -> str:
    user = get_user_model().objects.create_user(username="bench", password="bench")
    return ClientApiKey.objects.create_key(name="bench", user=user)[1]


if __name__ == "__main__":
    main()
