"""Live bars end to end: kitesim -> a Celery feed -> BarsHook -> 1-minute bars in the database, and
the index's forming bar in a live-stream delta from the real web process.

kitesim's simulated clock is jumped past minute boundaries (POST /_sim/clock) instead of waiting.
"""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import requests
from websockets.sync.client import connect

from kitesim.testing import KitesimThread
from tests.asgi_server import free_port
from tests.browser.web_process import WebProcess
from tests.ticks.factories import UserFactory
from tests.waiting import until
from tests.workers.conftest import WorkerProcess
from ticks.models import Bar, BrokerAccount, ClientApiKey, Instrument
from workers.models import FeedAssignment
from workers.selectors import feed_plan_current
from workers.services import feed_plan_refresh, feed_supervise

pytestmark = pytest.mark.integration


def _jump(sim: KitesimThread, seconds: float) -> float:
    response = requests.post(f"{sim.root}/_sim/clock", json={"advance_seconds": seconds}, timeout=5)
    response.raise_for_status()
    return response.json()["now"]


def _primary_tokens() -> set[int]:
    plan = feed_plan_current()
    return set(plan.assignments.filter(primary=True).values_list("instrument_token", flat=True))


def _live_minutes() -> dict[int, set[int]]:
    """Stored live bars: minute start (epoch s) -> tokens."""
    minutes: dict[int, set[int]] = {}
    for token, start in Bar.objects.filter(source="live", interval="minute").values_list(
        "instrument_token", "start"
    ):
        minutes.setdefault(int(start.timestamp()), set()).add(token)
    return minutes


def _index_token() -> int:
    return Instrument.objects.get(exchange="NSE", tradingsymbol="NIFTY 50").instrument_token


def test_a_celery_feed_writes_live_minute_bars_and_streams_the_forming_one(
    fleet: dict[str, BrokerAccount],
    kitesim: KitesimThread,
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    stack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    assert feed_plan_refresh(client=redis_client).errors == []
    primary, index = _primary_tokens(), _index_token()
    worker = start_worker()
    feed_supervise(client=redis_client)
    web = WebProcess(stack_env, free_port(), tmp_path / "web.log")
    _, key = ClientApiKey.objects.create_key(name="bars", user=UserFactory())
    try:
        with connect(f"ws://127.0.0.1:{web.port}/ws/stream/", additional_headers={"X-Api-Key": key}) as ws:
            ws.send(json.dumps({"action": "subscribe", "tokens": [index]}))
            bar = _forming_bar(ws, index)
        # A token's first minute is partial and not written; the next whole minute is.
        for _ in range(2):
            _jump(kitesim, 60)
            time.sleep(1.5)  # the feed sees the new minute
        until(lambda: any(len(tokens) > 1 for tokens in _live_minutes().values()), timeout=40)
    finally:
        web.kill()

    open_, high, low, close, volume = bar[1:]
    assert bar[0] % 60 == 0 and low <= min(open_, close) <= max(open_, close) <= high and volume == 0
    minutes = _live_minutes()
    written = max(minutes, key=lambda start: len(minutes[start]))
    # The jumps move the price, and tick-driven re-plans may swap strikes meanwhile: every token primary
    # throughout has its bar, and no token that was never primary (in any version kept) has one.
    ever = set(FeedAssignment.objects.filter(primary=True).values_list("instrument_token", flat=True))
    assert primary & _primary_tokens() <= minutes[written] <= ever, worker.log.read_text()[-3000:]
    index_bar = Bar.objects.get(
        instrument_token=index, interval="minute", start=datetime.fromtimestamp(written, UTC)
    )
    assert (
        index_bar.volume == 0 and index_bar.ticks > 0 and index_bar.low <= index_bar.close <= index_bar.high
    )
    traded = Bar.objects.filter(source="live", volume__gt=0).count()
    assert traded > 0  # options and futures trade in kitesim: volume from volume_traded increments


def _forming_bar(ws, token: int) -> list[float]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=10))
        if message.get("type") == "delta" and str(token) in message.get("bars", {}):
            return message["bars"][str(token)]
    raise AssertionError("no forming bar of the index in 30 s of deltas")
