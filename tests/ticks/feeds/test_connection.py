"""FeedConnection against a live kitesim: modes, reconnects, watchdog, 403, text routing."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import requests

from kitesim.testing import KitesimThread
from ticks.feeds.connection import ConnectionSettings, Credentials, FeedConnection, TokenRejected
from ticks.feeds.protocol import decode_frame

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.modes: dict[int, str] = {}
        self.frames = 0
        self.texts: list[dict[str, Any]] = []
        self.reconnects: list[str] = []

    async def frame(self, payload: bytes, received_at: float) -> None:
        self.frames += 1
        for row in decode_frame(payload):
            self.modes[int(row["instrument_token"])] = str(row["mode"])

    def text(self, message: dict[str, Any]) -> None:
        self.texts.append(message)


def _connection(
    sim: KitesimThread, seen: Recorder, token: str | None = None, watchdog_s: float = 5.0
) -> FeedConnection:
    async def credentials() -> Credentials:
        return Credentials(sim.api_key, token or sim.access_token)

    return FeedConnection(
        index=0,
        settings=ConnectionSettings(
            ws_root=sim.ws_root, watchdog_s=watchdog_s, backoff_base_s=0.05, backoff_cap_s=0.2
        ),
        credentials=credentials,
        on_frame=seen.frame,
        on_text=seen.text,
        on_reconnect=seen.reconnects.append,
    )


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _running(connection: FeedConnection, body: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(connection.run(stop))
    try:
        await body()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _tokens(sim: KitesimThread, segment: str, count: int) -> list[int]:
    return [i.instrument_token for i in sim.state.market.universe.all() if i.segment == segment][:count]


async def test_it_streams_each_token_in_its_mode(kitesim: KitesimThread) -> None:
    seen = Recorder()
    connection = _connection(kitesim, seen)
    full, ltp = _tokens(kitesim, "NFO-OPT", 10), _tokens(kitesim, "NFO-FUT", 2)
    await connection.update(
        subscribe={**dict.fromkeys(full, "full"), **dict.fromkeys(ltp, "ltp")}, unsubscribe=()
    )

    async def body() -> None:
        await _until(lambda: set(full + ltp) <= set(seen.modes))
        await connection.update(subscribe={}, unsubscribe=full)

    await _running(connection, body)
    assert {seen.modes[t] for t in full} == {"full"}
    assert {seen.modes[t] for t in ltp} == {"ltp"}


async def test_it_reconnects_and_resubscribes_after_a_drop(kitesim: KitesimThread) -> None:
    seen = Recorder()
    connection = _connection(kitesim, seen)
    tokens = _tokens(kitesim, "NFO-OPT", 5)
    await connection.update(subscribe=dict.fromkeys(tokens, "quote"), unsubscribe=())

    async def body() -> None:
        await _until(lambda: seen.frames > 0)
        await asyncio.to_thread(requests.post, f"{kitesim.root}/_sim/drop", timeout=5)
        await _until(lambda: seen.reconnects == ["closed"])
        seen.modes.clear()
        await _until(lambda: set(tokens) <= set(seen.modes))

    await _running(connection, body)
    assert set(seen.modes.values()) == {"quote"}


async def test_the_watchdog_reconnects_a_silent_connection(kitesim: KitesimThread) -> None:
    seen = Recorder()
    connection = _connection(kitesim, seen, watchdog_s=1.0)
    await connection.update(subscribe=dict.fromkeys(_tokens(kitesim, "NFO-OPT", 3), "ltp"), unsubscribe=())

    async def body() -> None:
        await _until(lambda: seen.frames > 0)
        await asyncio.to_thread(
            requests.post, f"{kitesim.root}/_sim/faults", json={"stall_seconds": 3.0}, timeout=5
        )
        await _until(lambda: "silent" in seen.reconnects, timeout=6)

    await _running(connection, body)


async def test_a_rejected_token_raises_instead_of_retrying(kitesim: KitesimThread) -> None:
    connection = _connection(kitesim, Recorder(), token="expired-token")

    with pytest.raises(TokenRejected, match="403"):
        await asyncio.wait_for(connection.run(asyncio.Event()), 10)


async def test_text_messages_are_routed(kitesim: KitesimThread) -> None:
    seen = Recorder()
    connection = _connection(kitesim, seen)
    await connection.update(subscribe=dict.fromkeys(_tokens(kitesim, "NFO-OPT", 1), "ltp"), unsubscribe=())

    async def body() -> None:
        await _until(lambda: connection.connected)
        kitesim.call(
            kitesim.state.order_updates.publish, kitesim.api_key, {"order_id": "1", "status": "COMPLETE"}
        )
        await _until(lambda: seen.texts != [])

    await _running(connection, body)
    assert seen.texts == [{"type": "order", "data": {"order_id": "1", "status": "COMPLETE"}}]
