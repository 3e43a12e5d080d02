"""AccountPool against a live kitesim: capacity limits and make-before-break plan changes."""

import asyncio

import pytest

from kitesim.testing import KitesimThread
from ticks.feeds.connection import ConnectionSettings, Credentials
from ticks.feeds.pool import AccountPool, PlanTooLarge

pytestmark = pytest.mark.integration


def _pool(
    sim: KitesimThread, calls: list[tuple[int, str, frozenset[int]]], *, per_connection: int = 3000
) -> AccountPool:
    async def credentials() -> Credentials:
        return Credentials(sim.api_key, sim.access_token)

    async def on_frame(payload: bytes, received_at: float) -> None:
        return None

    pool = AccountPool(
        account="demo",
        max_connections=2,
        tokens_per_connection=per_connection,
        settings=ConnectionSettings(ws_root=sim.ws_root),
        credentials=credentials,
        on_frame=on_frame,
        on_text=lambda message: None,
        on_reconnect=lambda reason: None,
    )
    for connection in pool.connections:
        original = connection.update

        async def recording(*, subscribe, unsubscribe, _index=connection.index, _original=original) -> None:
            if subscribe:
                calls.append((_index, "subscribe", frozenset(subscribe)))
            if unsubscribe:
                calls.append((_index, "unsubscribe", frozenset(unsubscribe)))
            await _original(subscribe=subscribe, unsubscribe=unsubscribe)

        connection.update = recording  # type: ignore[method-assign]
    return pool


async def test_a_plan_change_subscribes_everywhere_before_it_unsubscribes(kitesim: KitesimThread) -> None:
    calls: list[tuple[int, str, frozenset[int]]] = []
    pool = _pool(kitesim, calls)
    tokens = [i.instrument_token for i in kitesim.state.market.universe.all()][:6]
    stop = asyncio.Event()
    await pool.apply({0: dict.fromkeys(tokens[:3], "ltp"), 1: dict.fromkeys(tokens[3:], "ltp")})
    running = asyncio.create_task(pool.run(stop))
    calls.clear()

    # token 2 moves from connection 0 to 1; token 5 leaves; token 0 changes mode
    await pool.apply(
        {0: {tokens[0]: "full", tokens[1]: "ltp"}, 1: {tokens[2]: "ltp", tokens[3]: "ltp", tokens[4]: "ltp"}}
    )

    assert calls == [
        (0, "subscribe", frozenset({tokens[0]})),
        (1, "subscribe", frozenset({tokens[2]})),
        (0, "unsubscribe", frozenset({tokens[2]})),
        (1, "unsubscribe", frozenset({tokens[5]})),
    ]
    assert pool.connections[0].wanted == {tokens[0]: "full", tokens[1]: "ltp"}
    stop.set()
    await running


async def test_a_plan_beyond_the_accounts_capacity_is_refused(kitesim: KitesimThread) -> None:
    pool = _pool(kitesim, [], per_connection=2)

    with pytest.raises(PlanTooLarge, match="3 tokens on connection 0"):
        await pool.apply({0: {1: "ltp", 2: "ltp", 3: "ltp"}})
    with pytest.raises(PlanTooLarge, match="connection 2 of 2"):
        await pool.apply({2: {1: "ltp"}})
    assert all(connection.wanted == {} for connection in pool.connections)
