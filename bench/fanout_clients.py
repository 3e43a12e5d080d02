"""One process of bench/fanout.py's WebSocket clients, in its own process group so that its CPU is
counted apart from the web's.

Connects ``--count`` clients (each offers permessage-deflate, as browsers do), client i subscribed to
chain ``(--first + i) % len(chains)``, plus ``--slow`` clients that subscribe and never read. Each
connects with a ticket of its own, fetched with ``--key`` from ``--api``'s POST /api/v1/stream/tickets
(README "Live stream"). Prints one
line ``connected <json>`` when every client has its snapshot (or failed), then waits for ``go <seconds>``
on stdin, measures that long and prints ``result <json>``: per delta, the latency from the feed receiving
the frame to this process receiving the delta, for the newest row and for the oldest; the deltas
received; gaps in ``seq`` per connection (over the whole connection, not only the window); how
connections failed; what became of the slow clients. The garbage collector is off while measuring, so
that its pauses are not counted as the server's.

    .venv/bin/python bench/fanout_clients.py URL CHAIN[,CHAIN...] --api HTTP_ROOT --key KEY --count N
        [--first I] [--slow K]
"""

import argparse
import asyncio
import gc
import json
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import requests
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

CONNECT_TIMEOUT_S = 120.0
DELTA_HEAD = '{"type":"delta","seq":'


@dataclass
class Seen:
    """What this process's clients saw."""

    newest_ms: list[float] = field(default_factory=list)  # per delta in the window
    oldest_ms: list[float] = field(default_factory=list)
    deltas: int = 0  # in the window
    snapshots: int = 0
    gaps: list[int] = field(default_factory=list)  # per connection: seq jumps
    failures: Counter[str] = field(default_factory=Counter)  # how connections ended early, by reason
    slow: list[str] = field(default_factory=list)
    measuring: bool = False


def _seq(text: str) -> int:
    """A delta's or snapshot's ``seq`` (deltas put it right after the type: no full parse)."""
    if text.startswith(DELTA_HEAD):
        return int(text[len(DELTA_HEAD) : text.index(",", len(DELTA_HEAD))])
    return int(json.loads(text)["seq"])


def _timing(text: str) -> tuple[float, float] | None:
    """A delta's feed-receipt times (newest, oldest). The server writes them last
    (ticks.stream.delta_text), so only the tail is parsed."""
    at = text.rfind(',"received_at":')
    if at < 0:
        return None
    times = json.loads("{" + text[at + 1 :])
    if times["received_at"] is None:
        return None
    return times["newest_received_at"], times["received_at"]


def _receive(text: str, seen: Seen) -> None:
    if not text.startswith(DELTA_HEAD):
        if json.loads(text)["type"] == "snapshot":  # rare: parse it whole
            seen.snapshots += 1
        return
    if not seen.measuring:
        return
    seen.deltas += 1
    timing = _timing(text)
    if timing is not None:
        now = time.time()
        seen.newest_ms.append((now - timing[0]) * 1000)
        seen.oldest_ms.append((now - timing[1]) * 1000)


async def _read(ws: ClientConnection, seen: Seen, gaps: list[int]) -> None:
    """Receive until cancelled, counting seq gaps in ``gaps[0]``. No timeout per receive: asyncio's
    wait_for around each one was a timer and a task per delta, client CPU the box shares with the web."""
    last = None
    while True:
        text = await ws.recv()
        seq = _seq(text)
        if last is not None and seq != last + 1:
            gaps[0] += 1
        last = seq
        _receive(text, seen)


def _ticket(api: str, key: str) -> str:
    answer = requests.post(f"{api}/api/v1/stream/tickets", headers={"X-Api-Key": key}, timeout=30)
    answer.raise_for_status()
    return answer.json()["ticket"]


async def _with_ticket(url: str, tickets: Callable[[], str]) -> str:
    return f"{url}?ticket={await asyncio.to_thread(tickets)}"


async def _client(url: str, chain: str, seen: Seen, stop: asyncio.Event, tls: dict[str, Any]) -> None:
    try:
        async with connect(
            url, max_size=None, open_timeout=CONNECT_TIMEOUT_S, ping_timeout=None, **tls
        ) as ws:
            await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
            gaps = [0]
            reader = asyncio.create_task(_read(ws, seen, gaps))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([reader, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if reader.done():
                reader.result()  # the connection ended early: raises how
            reader.cancel()
            seen.gaps.append(gaps[0])
    except ConnectionClosed as closed:
        seen.failures[f"closed {closed.rcvd.code if closed.rcvd else 'without a close frame'}"] += 1
    except (OSError, TimeoutError, InvalidHandshake) as error:
        seen.failures[type(error).__name__] += 1


async def _never_reads(url: str, chain: str, seen: Seen, stop: asyncio.Event, tls: dict[str, Any]) -> None:
    """Subscribes, then never reads: its TCP window fills and the server must not wait on it."""
    started = time.monotonic()
    async with connect(url, max_queue=1, ping_timeout=None, **tls) as ws:
        await ws.send(json.dumps({"action": "subscribe", "chain": chain}))
        closed = asyncio.ensure_future(ws.wait_closed())
        await asyncio.wait([closed, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if closed.done():
            seen.slow.append(
                f"dropped by the server with {ws.close_code} after {time.monotonic() - started:.0f} s"
            )
        else:
            seen.slow.append("connected to the end")


def _emit(kind: str, payload: object) -> None:
    sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


async def _run(args: argparse.Namespace) -> None:
    chains = args.chains.split(",")
    seen, stop = Seen(), asyncio.Event()
    tickets = partial(_ticket, args.api, args.key)
    urls = await asyncio.gather(*(_with_ticket(args.url, tickets) for _ in range(args.count + args.slow)))
    tls = _tls(args)
    tasks = [
        asyncio.create_task(_client(urls[i], chains[(args.first + i) % len(chains)], seen, stop, tls))
        for i in range(args.count)
    ]
    tasks += [
        asyncio.create_task(_never_reads(url, chains[0], seen, stop, tls)) for url in urls[args.count :]
    ]
    started = time.monotonic()
    while seen.snapshots + sum(seen.failures.values()) < args.count:  # the slow ones never read theirs
        if time.monotonic() - started > CONNECT_TIMEOUT_S:
            break
        await asyncio.sleep(0.05)
    _emit("connected", {"snapshots": seen.snapshots, "seconds": time.monotonic() - started})
    command = await asyncio.to_thread(sys.stdin.readline)
    seconds = float(command.split()[1])
    gc.disable()  # a collection here would stall every client at once and be counted as the server's
    seen.measuring = True
    await asyncio.sleep(seconds)
    seen.measuring = False
    gc.enable()
    stop.set()
    await asyncio.gather(*tasks)
    result = {
        name: getattr(seen, name)
        for name in ("newest_ms", "oldest_ms", "deltas", "snapshots", "gaps", "slow")
    }
    _emit("result", {**result, "failures": dict(seen.failures)})  # asdict would count a Counter's items


def _tls(args: argparse.Namespace) -> dict[str, Any]:
    """websockets.connect options for a wss:// URL behind bench/fanout_proxy.py's nginx: TCP to
    127.0.0.1 on ``--connect-port``, TLS for the URL's name, trusting ``--ca`` only; none for ws://."""
    if args.ca is None:
        return {}
    return {"host": "127.0.0.1", "port": args.connect_port, "ssl": ssl.create_default_context(cafile=args.ca)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("chains")
    parser.add_argument("--api", required=True, help="the web's HTTP root, for stream tickets")
    parser.add_argument("--key", required=True, help="the API key the tickets are issued to")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="chain index of the first client")
    parser.add_argument("--slow", type=int, default=0, help="clients that subscribe and never read")
    parser.add_argument("--ca", help="the CA file of a wss:// URL's server (bench/fanout_proxy.py)")
    parser.add_argument("--connect-port", type=int, help="with --ca: the port to connect to on 127.0.0.1")
    uvloop.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
