"""The background task that re-checks resting orders against the moving market."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from kitesim.rest.keys import DESK, STATE

log = logging.getLogger("kitesim.rest")
SWEEP_INTERVAL_S = 0.2  # host seconds between sweeps


def sweep_once(app: web.Application) -> int:
    """One pass over every book; publishes the resulting order updates. Returns how many."""
    state = app[STATE]
    updates = app[DESK].sweep(state.market, state.clock.now())
    for api_key, payloads in updates.items():
        for payload in payloads:
            state.order_updates.publish(api_key, payload)
    return sum(len(payloads) for payloads in updates.values())


async def _sweep_forever(app: web.Application) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        sweep_once(app)


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("order sweep stopped: resting orders will no longer fill", exc_info=task.exception())


async def order_sweeper(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the sweep for the application's lifetime."""
    task = asyncio.create_task(_sweep_forever(app), name="kitesim-order-sweep")
    task.add_done_callback(_report_death)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
