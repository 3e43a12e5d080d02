"""feed_connections: +1 while a connection to Kite is open, back down when it closes."""

import asyncio

import pytest
from prometheus_client import REGISTRY

from kitesim.testing import KitesimThread
from tests.ticks.feeds.test_connection import Recorder, _tokens, _until
from ticks.feeds.connection import ConnectionSettings, Credentials, FeedConnection

pytestmark = pytest.mark.integration

ACCOUNT = "connections-probe"


def _open() -> float:
    return REGISTRY.get_sample_value("feed_connections", {"account": ACCOUNT}) or 0.0


async def test_an_open_connection_counts_once_under_its_account(kitesim: KitesimThread) -> None:
    async def credentials() -> Credentials:
        return Credentials(kitesim.api_key, kitesim.access_token)

    seen = Recorder()
    connection = FeedConnection(
        index=0,
        settings=ConnectionSettings(ws_root=kitesim.ws_root),
        credentials=credentials,
        on_frame=seen.frame,
        on_text=seen.text,
        account=ACCOUNT,
    )
    await connection.update(subscribe=dict.fromkeys(_tokens(kitesim, "NFO-OPT", 3), "ltp"), unsubscribe=())
    before = _open()
    stop = asyncio.Event()
    task = asyncio.create_task(connection.run(stop))
    try:
        await _until(lambda: seen.frames > 0)
        during = _open()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    assert (during, _open()) == (before + 1, before)
