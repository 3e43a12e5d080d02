"""The REST edge on a bare application: envelopes, the catch-all, scope, faults and held orders."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kitesim.accounts import AccountBook
from kitesim.clock import SimClock
from kitesim.rest import register_routes
from kitesim.rest.keys import SHUTTING_DOWN, STATE
from kitesim.rest.orders import _hold_response
from kitesim.state import SimState

START = 1_787_000_000.0
AUTH = {"X-Kite-Version": "3", "Authorization": "token demo:demotoken"}


class BrokenMarket:
    """A market whose every read is a bug: the edge must answer 500, not crash."""

    @property
    def universe(self) -> object:
        raise RuntimeError("model exploded")

    def quote(self, token: int) -> object:
        raise RuntimeError("model exploded")


async def teapot(request: web.Request) -> web.Response:
    return web.Response(status=418, text="not Kite's business")


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    state = SimState(clock=SimClock(START), accounts=AccountBook([], START), market=BrokenMarket())  # type: ignore[arg-type]
    app = web.Application()
    register_routes(app, state)
    app.router.add_get("/_sim/teapot", teapot)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_a_bug_answers_general_exception_500_and_is_logged(client: TestClient,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="kitesim.rest"):
        response = await client.get("/instruments", headers=AUTH)
    assert response.status == 500
    assert await response.json() == {"status": "error", "message": "Something went wrong. Please try again.",
                                     "error_type": "GeneralException", "data": None}
    assert "internal error answering GET /instruments" in caplog.text
    assert (await client.get("/user/profile", headers=AUTH)).status == 200


async def test_routes_of_others_pass_through_untouched(client: TestClient) -> None:
    response = await client.get("/_sim/teapot")
    assert response.status == 418 and await response.text() == "not Kite's business"


async def test_unmatched_websocket_upgrades_are_left_alone(client: TestClient) -> None:
    response = await client.get("/nowhere", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert response.status == 404
    assert not response.headers["Content-Type"].startswith("application/json")


async def test_faults_apply_to_rest_routes_only(client: TestClient) -> None:
    state = client.app[STATE]
    state.faults.update({"rest_5xx_next": 1})
    assert (await client.get("/_sim/teapot")).status == 418
    response = await client.get("/user/profile", headers=AUTH)
    assert response.status == 503 and (await response.json())["error_type"] == "GeneralException"
    assert state.faults.rest_5xx_next == 0


async def test_held_order_response_ends_at_shutdown(client: TestClient) -> None:
    started = time.monotonic()
    held = asyncio.create_task(_hold_response(client.app))
    await asyncio.sleep(0.05)
    assert not held.done()
    client.app[SHUTTING_DOWN].set()
    await asyncio.wait_for(held, 1.0)
    assert time.monotonic() - started < 1.0
