"""No leaked subscriptions (issue 17, channels_redis#276): rounds of a couple of hundred stream clients
against a real web process, each subscribing a chain while rows flow and leaving in one of the ways
clients leave: a clean close, a dropped TCP connection, a read stall the server closes with 4408, a
bad ticket (4401), a key past its connection cap (4429). After every round Redis's pub/sub channels of
this run return to where they started (no per-connection channel, no group channel with no member
left), and once WARM_UP rounds have grown the web process to its working size, its RSS stays within
RSS_BOUND_MB of it. Measured over 8 rounds (two runs): 203-204, 220-221, 223, then 223-225 MB for the five after.

Before the fix a send that met a client already gone (the subscribe's snapshot) ended its consumer
without a disconnect: 7-80 of 150 consumers per round kept their group membership and receiver, the
chain's group channel stayed subscribed and each dead consumer stayed in memory.

Five rounds of 195 take about 20 s here; STREAM_SOAK_ROUNDS=N runs the long version.
"""

import asyncio
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import requests
from channels.layers import get_channel_layer
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.asgi_server import free_port
from tests.browser.web_process import WebProcess
from tests.ticks.factories import OptionFactory, UserFactory
from ticks.models import ClientApiKey
from ticks.stream import chain_group, rows_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

EXPIRY = date(2026, 12, 1)
CHAIN = "NIFTY:2026-12-01"
ROUNDS = int(os.environ.get("STREAM_SOAK_ROUNDS", "5"))
WARM_UP = 3
# Per round: how many clients leave which way. Keys hold at most CAP each; one more key is asked for
# CAP + OVER connections, and OVER of them are refused.
KINDS = {"clean": 40, "abrupt": 40, "slow": 30, "ticket": 40, "bad_ticket": 10}
KEYS, CAP, OVER = 6, 30, 5
RSS_BOUND_MB = 8.0
GAVE_UP = "took nothing for"  # the web's log line as it closes a stalled client (ticks.consumers)
WEB_ENV = {
    "STREAM_MAX_CONNECTIONS_PER_KEY": str(CAP),
    "STREAM_MAX_CONNECTIONS_PER_IP": "1000",
    "STREAM_SLOW_CLIENT_S": "1",
    "STREAM_SEND_BUFFER_BYTES": "32768",
}


@dataclass
class Web:
    process: WebProcess
    log: Path
    keys: list[str]
    capped: str
    gave_up: int = 0  # stalled clients the web has closed so far

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.process.port}/ws/stream/"

    def ticket(self, key: str) -> str:
        answer = requests.post(
            f"{self.process.url}/api/v1/stream/tickets", headers={"X-Api-Key": key}, timeout=10
        )
        answer.raise_for_status()
        return answer.json()["ticket"]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _channels(client: redis.Redis) -> list[str]:
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    return sorted(name.decode() for name in client.pubsub_channels(f"{prefix}*"))


async def _closed_code(ws: ClientConnection, timeout: float = 30) -> int:
    """Read (and drop) whatever is queued until the server's close: its code; 0 if none came in time."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            await asyncio.wait_for(ws.recv(), max(deadline - time.monotonic(), 0.01))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006
    except TimeoutError:
        return 0


async def _subscribed(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"action": "subscribe", "chain": CHAIN}))
    while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != "snapshot":
        pass


async def _stalling(web: Web, key: str) -> ClientConnection:
    """A client whose socket takes little (4 KB receive buffer) and that stops reading once subscribed."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", web.process.port))
    ws = await connect(
        web.url, sock=sock, max_queue=1, ping_interval=None, additional_headers={"X-Api-Key": key}
    )
    await _subscribed(ws)
    return ws


async def _client(web: Web, kind: str, key: str) -> str | ClientConnection:
    """One client's visit; a stalling client is returned open, to be read after the others left."""
    if kind == "slow":
        return await _stalling(web, key)
    if kind == "bad_ticket":
        async with connect(f"{web.url}?ticket={'x' * 43}") as ws:
            return f"closed {await _closed_code(ws)}"
    if kind == "ticket":
        ticket = await asyncio.to_thread(web.ticket, key)
        ws = await connect(f"{web.url}?ticket={ticket}", ping_interval=None)
    else:
        ws = await connect(web.url, ping_interval=None, additional_headers={"X-Api-Key": key})
    try:
        await _subscribed(ws)
    except ConnectionClosed:
        return f"closed {ws.close_code}"
    if kind == "abrupt":
        ws.transport.abort()  # no close frame: a dropped connection
    else:
        await ws.close()
    return "left"


async def _given_up(web: Web, count: int) -> None:
    """Until the web has logged giving up on ``count`` more stalled clients (bounded wait)."""
    deadline = time.monotonic() + 60
    while web.log.read_text().count(GAVE_UP) < web.gave_up + count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    web.gave_up = web.log.read_text().count(GAVE_UP)


async def _round(web: Web) -> list[str]:
    plan = [kind for kind, count in KINDS.items() for _ in range(count)]
    main = [_client(web, kind, web.keys[i % KEYS]) for i, kind in enumerate(plan)]
    capped = [_client(web, "clean", web.capped) for _ in range(CAP + OVER)]
    visits = await asyncio.gather(*main, *capped)
    stalled = [visit for visit in visits if isinstance(visit, ClientConnection)]
    await _given_up(web, len(stalled))  # reading earlier would un-stall them
    codes = await asyncio.gather(*(_closed_code(ws) for ws in stalled))
    return [visit for visit in visits if isinstance(visit, str)] + [f"closed {code}" for code in codes]


async def _publish(stop: asyncio.Event, tokens: list[int]) -> None:
    """Rows for the chain at ~20 messages/s, 20 KB each and random (permessage-deflate would shrink a
    repeated pad to nothing), so a stalled client fills its socket within a second or two."""
    layer, sent = get_channel_layer(), 0
    while not stop.is_set():
        sent += 1
        rows = [
            {"instrument_token": token, "last_price": float(sent), "pad": secrets.token_hex(1000)}
            for token in tokens
        ]
        await layer.group_send(chain_group("NIFTY", EXPIRY), rows_message(rows))
        await asyncio.sleep(0.05)


def _seed() -> tuple[list[int], list[str], str]:
    tokens = [
        OptionFactory(expiry=EXPIRY, strike=Decimal(strike), instrument_type=kind).instrument_token
        for strike in range(24900, 25150, 50)
        for kind in ("CE", "PE")
    ]
    keys = [ClientApiKey.objects.create_key(name=f"soak{i}", user=UserFactory())[1] for i in range(KEYS + 1)]
    return tokens, keys[:KEYS], keys[KEYS]


async def _settled(client: redis.Redis, baseline: list[str]) -> list[str]:
    """Redis's channels once the round's last unsubscribes landed (bounded wait)."""
    deadline = time.monotonic() + 20
    while (channels := _channels(client)) != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return channels


async def test_every_way_of_leaving_gives_back_subscriptions_and_memory(
    stack_env: dict[str, str], tmp_path: Path, redis_client: redis.Redis
) -> None:
    tokens, keys, capped = await asyncio.to_thread(_seed)
    log = tmp_path / "web.log"
    process = await asyncio.to_thread(WebProcess, {**stack_env, **WEB_ENV}, free_port(), log)
    web = Web(process, log, keys, capped)
    baseline = _channels(redis_client)
    stop = asyncio.Event()
    publisher = asyncio.create_task(_publish(stop, tokens))
    outcomes, left, rss = [], [], []
    try:
        for _ in range(ROUNDS):
            outcomes.append(sorted(await _round(web)))
            left.append(await _settled(redis_client, baseline))
            rss.append(_rss_mb(process.process.pid))
    finally:
        stop.set()
        await publisher
        process.kill()

    expected = sorted(
        ["left"] * (KINDS["clean"] + KINDS["abrupt"] + KINDS["ticket"] + CAP)
        + ["closed 4401"] * KINDS["bad_ticket"]
        + ["closed 4408"] * KINDS["slow"]
        + ["closed 4429"] * OVER
    )
    assert outcomes == [expected] * ROUNDS
    assert left == [baseline] * ROUNDS
    assert max(rss[WARM_UP:]) - rss[WARM_UP - 1] < RSS_BOUND_MB, rss
