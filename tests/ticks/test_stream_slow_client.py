"""A client that stops reading while frames flood in: the web process's memory stays bounded.

Runs the real web process (uvicorn) and blasts the chain's group with ~200 frames a second while
one connection subscribes and then does not read for 15 s. Conflation turns the flood into at most
one delta per flush interval, each holding the newest row per token, numbered without gaps.
"""

import asyncio
import json
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from channels.layers import get_channel_layer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from tests.asgi_server import free_port
from tests.browser.web_process import WebProcess
from tests.ticks.factories import OptionFactory, UserFactory
from ticks.models import ClientApiKey
from ticks.stream import chain_group, rows_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

EXPIRY = date(2026, 12, 1)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def chain_tokens(redis_client) -> list[int]:
    return [
        OptionFactory(expiry=EXPIRY, strike=Decimal(strike), instrument_type=kind).instrument_token
        for strike in range(24000, 26000, 50)
        for kind in ("CE", "PE")
    ]


async def test_a_client_that_stops_reading_is_dropped_and_memory_stays_bounded(
    chain_tokens: list[int], stack_env: dict[str, str], tmp_path: Path
) -> None:
    _, key = await asyncio.to_thread(lambda: ClientApiKey.objects.create_key(name="slow", user=UserFactory()))
    web = await asyncio.to_thread(WebProcess, stack_env, free_port(), tmp_path / "web.log")
    layer = get_channel_layer()
    try:
        # The sync client reads in a thread into a 4-message queue, then stops reading: TCP backpressure.
        url = f"ws://127.0.0.1:{web.port}/ws/stream/"
        with sync_connect(url, additional_headers={"X-Api-Key": key}, max_queue=4) as ws:
            ws.send(json.dumps({"action": "subscribe", "chain": "NIFTY:2026-12-01"}))
            ws.recv(timeout=10)  # the snapshot; from here on, never read
            start_rss, peak_rss, sent = _rss_mb(web.process.pid), 0.0, 0
            started = time.monotonic()
            while time.monotonic() - started < 15:
                rows = [
                    {"instrument_token": t, "last_price": float(sent), "pad": "x" * 2000}
                    for t in chain_tokens
                ]
                await layer.group_send(chain_group("NIFTY", EXPIRY), rows_message(rows))
                sent += 1
                peak_rss = max(peak_rss, _rss_mb(web.process.pid))
                await asyncio.sleep(0.005)
            deltas, closed = [], None
            try:
                while True:
                    deltas.append(json.loads(ws.recv(timeout=5)))
            except TimeoutError:
                pass
            except (
                ConnectionClosed
            ) as error:  # it took nothing for STREAM_SLOW_CLIENT_S after its buffer filled
                closed = error.rcvd.code
            end_rss = _rss_mb(web.process.pid)
    finally:
        web.kill()
    seconds = 15
    assert sent > 1000  # the flood happened
    assert closed in (None, 4408)
    assert len(deltas) <= seconds * 1000 / 100 * 1.5  # one delta per 100 ms flush at most, with slack
    assert [d["seq"] for d in deltas] == list(range(2, 2 + len(deltas)))
    assert deltas[-1]["rows"][0]["last_price"] == float(sent - 1)  # the newest value, not a backlog
    # ~1,000+ frames x 80 rows x 2 kB would be hundreds of MB if the server queued every frame.
    assert peak_rss - start_rss < 60 and end_rss - start_rss < 60
