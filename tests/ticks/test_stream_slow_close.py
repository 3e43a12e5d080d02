"""Issue 17's slow-client probe, at a bounded size: a client asks for 3,000 snapshots and stops reading
while rows flood in. It must get one pending snapshot, not 3,000; the web must stop sending at
STREAM_SEND_BUFFER_BYTES and close it with 4408 after STREAM_SLOW_CLIENT_S; and when the client reads
again it must get a bounded amount and then that close frame (the probe saw its socket kept ~50 s
with 1.4 MB queued, then 1006 with no close frame)."""

import asyncio
import json
import secrets
import socket
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from channels.layers import get_channel_layer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.asgi_server import free_port
from tests.browser.web_process import WebProcess
from tests.ticks.factories import OptionFactory, UserFactory
from ticks.models import ClientApiKey
from ticks.stream import chain_group, rows_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

EXPIRY = date(2026, 12, 1)
CHAIN = "NIFTY:2026-12-01"
SEND_BUFFER = 64 * 1024
GAVE_UP = "took nothing for"


def _seed() -> tuple[list[int], str]:
    tokens = [
        OptionFactory(expiry=EXPIRY, strike=Decimal(strike), instrument_type=kind).instrument_token
        for strike in range(24000, 26000, 50)
        for kind in ("CE", "PE")
    ]
    return tokens, ClientApiKey.objects.create_key(name="probe", user=UserFactory())[1]


async def _flood(stop: asyncio.Event, tokens: list[int]) -> int:
    """Rows at ~50 messages/s, random so compression cannot shrink them; the bytes of rows offered."""
    layer, sent, offered = get_channel_layer(), 0, 0
    while not stop.is_set():
        sent += 1
        rows = [
            {"instrument_token": t, "last_price": float(sent), "pad": secrets.token_hex(100)} for t in tokens
        ]
        message = rows_message(rows)
        offered += sum(len(row) for row in message["rows"])
        await layer.group_send(chain_group("NIFTY", EXPIRY), message)
        await asyncio.sleep(0.02)
    return offered


async def _given_up(log: Path) -> bool:
    deadline = time.monotonic() + 60
    while GAVE_UP not in log.read_text():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def test_a_client_that_floods_snapshot_requests_and_stops_reading_is_closed_4408(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    tokens, key = await asyncio.to_thread(_seed)
    env = {**stack_env, "STREAM_SLOW_CLIENT_S": "1", "STREAM_SEND_BUFFER_BYTES": str(SEND_BUFFER)}
    log = tmp_path / "web.log"
    web = await asyncio.to_thread(WebProcess, env, free_port(), log)
    stop = asyncio.Event()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the client's buffer: small, so it fills
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", web.port))
        ws = await connect(
            f"ws://127.0.0.1:{web.port}/ws/stream/",
            sock=sock,
            max_queue=1,  # websockets stops reading the socket once a message waits
            compression=None,  # bytes read are bytes on the wire
            ping_interval=None,
            additional_headers={"X-Api-Key": key},
        )
        await ws.send(json.dumps({"action": "subscribe", "chain": CHAIN}))
        snapshot = await asyncio.wait_for(ws.recv(), 10)
        flood = asyncio.create_task(_flood(stop, tokens))
        for _ in range(3000):  # then never read, until the web has given up on it
            await ws.send(json.dumps({"action": "snapshot", "chain": CHAIN}))
        given_up = await _given_up(log)
        stop.set()
        offered = await flood
        messages = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                messages.append(await asyncio.wait_for(ws.recv(), 10))
    finally:
        stop.set()
        web.kill()

    snapshots = [m for m in messages if m.startswith('{"type": "snapshot"')]
    # The flood offered several times the bound, so the bound, not a lull in rows, stopped the sends
    # (how many messages that took depends on the machine's speed: not asserted).
    assert json.loads(snapshot)["type"] == "snapshot" and offered > 3 * SEND_BUFFER and given_up
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4408, "client too slow to receive")
    assert len(snapshots) < 10  # 3,000 asked for: one pending at a time, and none sent past the bound
    largest = max(len(m) for m in [snapshot, *messages])
    # The web's bound and one message over it, what the client's small socket buffer and websockets'
    # one-message queue hold, and slack: not the megabytes a socket left to fill would take.
    assert sum(len(m) for m in messages) < SEND_BUFFER + 4 * largest + 64 * 1024
