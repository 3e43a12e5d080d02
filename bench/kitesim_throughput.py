"""How many ticks a second kitesim sustains to one client: 9,000 full-mode tokens over 3 connections.

Starts ``manage.py kitesim`` in its own process (so client and server each get a core), subscribes
3 x 3000 tradable tokens in full mode and counts packets for a while, decoding each frame with the
numpy fast path; then repeats with kiteconnect's own ``_parse_binary`` as the reference client.

    .venv/bin/python bench/kitesim_throughput.py [--speed 60] [--seconds 10]
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from kiteconnect import KiteTicker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kitesim.wire import decode_uniform, packet_count  # noqa: E402

CONNECTIONS, TOKENS_PER_CONNECTION = 3, 3000
Decoder = Callable[[bytes], int]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(port: int, speed: float, strikes: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "kitesim",
        "--port",
        str(port),
        "--speed",
        str(speed),
        "--strikes",
        str(strikes),
        "--seed",
        "7",
    ]
    # Our own interpreter and manage.py with numeric options: no untrusted input.
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


async def _wait_ready(session: aiohttp.ClientSession, root: str) -> None:
    for _ in range(200):
        try:
            async with session.get(f"{root}/_sim/state") as answer:
                if answer.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("kitesim did not start")


async def _tradable_tokens(session: aiohttp.ClientSession, root: str) -> list[int]:
    headers = {"X-Kite-Version": "3", "Authorization": "token demo:demotoken"}
    async with session.get(f"{root}/instruments", headers=headers) as answer:
        text = await answer.text()
    rows = [line.split(",") for line in text.splitlines()[1:]]
    return [int(r[0]) for r in rows if r[10] != "INDICES"]


def fast_count(frame: bytes) -> int:
    decoded = decode_uniform(frame)
    return packet_count(frame) if decoded is None else int(decoded.size)


REFERENCE_TICKER = KiteTicker("k", "t")


def reference_count(frame: bytes) -> int:
    return len(REFERENCE_TICKER._parse_binary(frame))


async def _consume(
    ws: aiohttp.ClientWebSocketResponse, decode: Decoder, until: float, counts: list[int]
) -> None:
    while time.monotonic() < until:
        try:
            message = await ws.receive(timeout=max(0.01, until - time.monotonic()))
        except TimeoutError:
            break
        if message.type == aiohttp.WSMsgType.BINARY and len(message.data) > 1:
            counts[0] += decode(message.data)
            counts[1] += 1
            counts[2] += len(message.data)
        elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break


async def _measure(
    ws_root: str, tokens: list[int], decode: Decoder, seconds: float
) -> tuple[float, float, float]:
    url = f"{ws_root}/?api_key=demo&access_token=demotoken"
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url, max_msg_size=0) for _ in range(CONNECTIONS)]
        for k, ws in enumerate(sockets):
            chunk = tokens[k * TOKENS_PER_CONNECTION : (k + 1) * TOKENS_PER_CONNECTION]
            await ws.send_str(json.dumps({"a": "subscribe", "v": chunk}))
            await ws.send_str(json.dumps({"a": "mode", "v": ["full", chunk]}))
        warm = [0, 0, 0]
        await asyncio.gather(*(_consume(ws, decode, time.monotonic() + 2.0, warm) for ws in sockets))
        counts = [0, 0, 0]
        start = time.monotonic()
        await asyncio.gather(*(_consume(ws, decode, start + seconds, counts) for ws in sockets))
        elapsed = time.monotonic() - start
        for ws in sockets:
            await ws.close()
    return counts[0] / elapsed, counts[1] / elapsed, counts[2] / elapsed / 1e6


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(args: argparse.Namespace) -> None:
    port = _free_port()
    server = _start_server(port, args.speed, args.strikes)
    root, ws_root = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_ready(session, root)
            tokens = (await _tradable_tokens(session, root))[: CONNECTIONS * TOKENS_PER_CONNECTION]
        print(
            f"kitesim --speed {args.speed} --strikes {args.strikes}: {len(tokens)} full-mode tokens "
            f"over {CONNECTIONS} connections, {args.seconds:.0f} s per run"
        )
        cpu0, wall0 = _cpu_seconds(server.pid), time.monotonic()
        fast = await _measure(ws_root, tokens, fast_count, args.seconds)
        cpu = (_cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)
        print(
            f"numpy fast-path client : {fast[0]:>10,.0f} ticks/s  {fast[1]:6.1f} frames/s  {fast[2]:6.1f} MB/s"
            f"  (server CPU {cpu:.0%} of one core)"
        )
        reference = await _measure(ws_root, tokens, reference_count, args.seconds)
        print(
            f"kiteconnect _parse_binary: {reference[0]:>10,.0f} ticks/s  {reference[1]:6.1f} frames/s"
            f"  {reference[2]:6.1f} MB/s"
        )
        print(f"fast / reference decoding ratio: {fast[0] / max(reference[0], 1):.1f}x")
    finally:
        server.terminate()
        server.wait(10)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--strikes", type=int, default=220, help="strikes each side: enough for 9,000 tokens")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_arguments()))
