"""``make chaos``: a feeds host cut off the network while another keeps running.

Two feeds workers run in two network namespaces made here, each joined by a veth pair to a bridge that
carries a private /24 (10.213.x.0, x unused on this machine): the bridge holds .1, where Redis and kitesim
listen (besides Redis's loopback), and the namespaces .2 and .3 (plus their own loopback). Nothing listens
on any other interface. Beat and a default worker run on the host; the database is a SQLite file.

The namespace whose worker holds the most accounts loses its link (``ip link set down`` inside it). Its
leases lapse and the other worker must take every one of its accounts within the lease TTL plus the
supervisor's period. When the link comes back the returning worker has lost its leases: kitesim must accept
no new connection from it, and its stale sockets (half-open since the cut) must be gone.

Every namespace, veth and bridge is deleted in ``finally``; every wait is bounded.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

from bench.processes import Process, pgrep
from scripts.chaos.feeds import (
    ACCOUNTS,
    FAST_FEEDS,
    POLL_S,
    SUPERVISOR_PERIOD_S,
    Fault,
    FeedStack,
    exit_on_sigterm,
    own_tokens,
    recovery_watch,
    run_child,
    scratch,
    scratch_done,
    until,
)
from scripts.chaos.outcome import Outcome

MODULE = "scripts.chaos.hostcut"
SUBNET_PREFIX = "10.213"
# Lease TTL + supervisor period, plus one second for the supervisor's task to reach a free feeds process
# and the feed's SET NX: beat's 5 s tick falls anywhere in the period, so without it a takeover that
# lands on the period's far edge would read as late.
DELIVERY_S = 1.0
TAKEOVER_BOUND_S = int(FAST_FEEDS["FEED_LEASE_TTL_MS"]) / 1000 + SUPERVISOR_PERIOD_S + DELIVERY_S
CUT_AT_LEAST_S = 12.0  # the link stays down at least this long: well past the lease TTL
RETURN_WATCH_S = 25.0  # after the link returns: how long kitesim's connections are watched


@dataclass(frozen=True, slots=True)
class HostCut:
    """What the scenario measured; the Outcome row is made from it, the test asserts each field."""

    accounts_moved: int  # accounts the cut worker held
    takeover_s: float | None  # cut -> the other worker holds every one of them
    bound_s: float  # lease TTL + supervisor period + DELIVERY_S
    recovered_s: float | None  # cut -> a tick made after the cut arrives on their own tokens
    ticks_lost: int  # their own tokens with no tick made after the cut, SETTLE_S after recovery
    stale_dropped_s: float | None  # link back -> kitesim holds no connection from the cut namespace
    returned_connections: int  # connections kitesim accepted from the cut namespace after the link returned
    doubled_after_settle: int  # samples, once the stale sockets are gone, with two connections on one key
    detail: str

    @property
    def ok(self) -> bool:
        return (
            self.accounts_moved > 0
            and self.takeover_s is not None
            and self.takeover_s <= self.bound_s
            and self.recovered_s is not None
            and self.ticks_lost == 0
            and self.stale_dropped_s is not None
            and self.returned_connections == 0
            and self.doubled_after_settle == 0
        )


def host_cut_measure() -> HostCut | str:
    """The scenario in a fresh interpreter: its measurements, or why it could not run."""
    result = run_child(MODULE, "hostcut")
    return result["error"] if "error" in result else HostCut(**result)


def host_cut() -> Outcome:
    cut = host_cut_measure()
    if isinstance(cut, str):
        return Outcome("feeds host cut off", False, None, None, None, None, cut)
    recovered = None if cut.recovered_s is None else round(cut.recovered_s, 2)
    return Outcome("feeds host cut off", cut.ok, recovered, None, None, cut.ticks_lost, cut.detail)


SCENARIOS: tuple[Callable[[], Outcome], ...] = (host_cut,)


# --- the network (in the child) -----------------------------------------------------------------------


def ip(*arguments: str, namespace: str | None = None) -> None:
    command = ["ip", "netns", "exec", namespace, "ip", *arguments] if namespace else ["ip", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    veth: str  # its end of the veth pair, inside the namespace
    address: str


def _free_subnet() -> str:
    """A 10.213.x /24 that no interface of this machine uses yet (x from this process's id on)."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout  # noqa: S607
    start = os.getpid() % 254
    for step in range(254):
        subnet = f"{SUBNET_PREFIX}.{(start + step) % 254 + 1}"
        if f" {subnet}." not in used:
            return subnet
    raise RuntimeError(f"no free {SUBNET_PREFIX}.x.0/24")


@contextmanager
def host_network(count: int) -> Iterator[tuple[str, list[Namespace]]]:
    """A bridge with the host's address and ``count`` namespaces on it; all of it deleted on the way out.
    Fails with a clear message where network namespaces are not permitted (they need CAP_NET_ADMIN)."""
    tag, subnet = f"fc{os.getpid()}", _free_subnet()
    bridge, namespaces = f"{tag}br", []
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        namespaces += [
            _namespace_add(f"{tag}{chr(97 + n)}", bridge, f"{subnet}.{n + 2}") for n in range(count)
        ]
        yield f"{subnet}.1", namespaces
    except RuntimeError as error:
        if "Operation not permitted" in str(error):
            raise RuntimeError(f"network namespaces need root (CAP_NET_ADMIN) here: {error}") from error
        raise
    finally:
        _network_delete(bridge, namespaces, tag)


def _namespace_add(name: str, bridge: str, address: str) -> Namespace:
    ip("netns", "add", name)
    namespace = Namespace(name, f"{name}n", address)
    ip("link", "add", f"{name}h", "type", "veth", "peer", "name", namespace.veth, "netns", name)
    ip("link", "set", f"{name}h", "master", bridge, "up")
    ip("addr", "add", f"{address}/24", "dev", namespace.veth, namespace=name)
    ip("link", "set", namespace.veth, "up", namespace=name)
    ip("link", "set", "lo", "up", namespace=name)
    return namespace


def _network_delete(bridge: str, namespaces: list[Namespace], tag: str) -> None:
    """The veth pairs (by their host ends), the namespaces, the bridge; whatever a failed start made.
    Complains (stderr) of anything named ``tag`` still there after a bounded wait."""
    for line in _ip_list("-o", "link"):
        name = line.split(": ")[1].split("@")[0]
        if name.startswith(tag) and name != bridge:
            _ip_list("link", "del", name)
    for name in {line.split()[0] for line in _ip_list("netns", "list") if line.startswith(tag)}:
        _ip_list("netns", "del", name)
    _ip_list("link", "del", bridge)
    left = lambda: [line for line in [*_ip_list("-o", "link"), *_ip_list("netns", "list")] if tag in line]  # noqa: E731
    if until(lambda: not left(), 5.0) is None:
        print(f"host cut: left behind: {left()}", file=sys.stderr)


def _ip_list(*arguments: str) -> list[str]:
    """``ip``'s output lines, whatever its exit status (cleanup goes on past a piece already gone)."""
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)  # noqa: S603, S607
    return done.stdout.splitlines()


# --- the scenario (in the child) ----------------------------------------------------------------------


def _holders(stack: FeedStack, workers: dict[str, Process]) -> dict[str, str | None]:
    """Which worker (by name) holds each account's lease: the holder id carries the feed's process id."""
    pids = {pid: name for name, worker in workers.items() for pid in pgrep("-g", worker.popen.pid)}
    held = {}
    for account, _, _ in ACCOUNTS:
        holder = stack.holder(account)
        held[account] = None if holder is None else pids.get(int(holder.split(":")[1]))
    return held


def _connections(stack: FeedStack) -> dict[int, tuple[str, str]]:
    """kitesim's live ticker connections: id -> (api_key, client address)."""
    state = stack.sim("state")
    return {
        int(key): (conn["api_key"], state["peers"].get(key, "")) for key, conn in state["connections"].items()
    }


@dataclass
class ReturnWatch:
    """kitesim's connections sampled after the link came back."""

    stale_dropped_s: float | None = None
    returned: set[int] = field(default_factory=set)  # new connections from the cut namespace
    doubled: int = 0


def watch_return(stack: FeedStack, address: str, back: float, first_new_id: int) -> ReturnWatch:
    seen = ReturnWatch()
    while time.monotonic() - back < RETURN_WATCH_S:
        connections = _connections(stack)
        from_cut = {conn_id for conn_id, (_, peer) in connections.items() if peer == address}
        seen.returned |= {conn_id for conn_id in from_cut if conn_id >= first_new_id}
        if not from_cut and seen.stale_dropped_s is None:
            seen.stale_dropped_s = time.monotonic() - back
        keys = [api_key for api_key, _ in connections.values()]
        if seen.stale_dropped_s is not None and len(keys) != len(set(keys)):
            seen.doubled += 1
        time.sleep(POLL_S * 2)
    return seen


def scenario(stack: FeedStack, namespaces: list[Namespace]) -> HostCut:
    workers = {
        ns.name: stack.start_worker(ns.name, "feeds", beat=False, prefix=("ip", "netns", "exec", ns.name))
        for ns in namespaces
    }
    stack.start_worker("host", "default", beat=True)  # the supervisor starts once both consume feeds
    carried = stack.streaming()
    held = _holders(stack, workers)
    cut = max(namespaces, key=lambda ns: sum(worker == ns.name for worker in held.values()))
    other = next(ns.name for ns in namespaces if ns is not cut)
    moved = [account for account, worker in held.items() if worker == cut.name]
    tokens = set().union(*(own_tokens(carried, account) for account in moved))

    fault = Fault(time.monotonic(), stack.sim_now(), {})
    ip("link", "set", cut.veth, "down", namespace=cut.name)
    taken = until(lambda: all(_holders(stack, workers)[a] == other for a in moved), TAKEOVER_BOUND_S + 30)
    recovery = recovery_watch(stack, tokens, fault)
    time.sleep(max(0.0, fault.started + CUT_AT_LEAST_S - time.monotonic()))

    first_new_id = max(_connections(stack), default=0) + 1
    down_s = time.monotonic() - fault.started
    ip("link", "set", cut.veth, "up", namespace=cut.name)
    seen = watch_return(stack, cut.address, time.monotonic(), first_new_id)
    detail = (
        f"{cut.name} ({cut.address}) held {len(moved)} of {len(ACCOUNTS)} accounts; link down {down_s:.1f} s; "
        f"{other} took them after {_s(taken)} (bound {TAKEOVER_BOUND_S:g} s = lease TTL + supervisor "
        f"period + {DELIVERY_S:g} s delivery); after the link returned: its stale sockets gone from kitesim "
        f"in {_s(seen.stale_dropped_s)}, {len(seen.returned)} new connection(s) from it, "
        f"{seen.doubled} sample(s) with two connections on one account; holders at the end: "
        f"{sorted(_holders(stack, workers).items())}"
    )
    return HostCut(
        accounts_moved=len(moved),
        takeover_s=taken,
        bound_s=TAKEOVER_BOUND_S,
        recovered_s=recovery.seconds,
        ticks_lost=len(recovery.lost),
        stale_dropped_s=seen.stale_dropped_s,
        returned_connections=len(seen.returned),
        doubled_after_settle=seen.doubled,
        detail=detail,
    )


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def main() -> None:
    exit_on_sigterm()
    path = scratch("chaos-hostcut-")
    with host_network(2) as (address, namespaces):
        stack = FeedStack(path, host=address, redis_binds=("127.0.0.1", address))
        try:
            stack.start()
            cut = scenario(stack, namespaces)
        finally:
            stack.close()
    cut = replace(cut, detail=cut.detail + scratch_done(path, cut.ok))
    print(json.dumps(asdict(cut)))


if __name__ == "__main__":
    main()
