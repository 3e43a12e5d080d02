"""Kite's REST API, served at the host root of the kitesim server."""

import asyncio

from aiohttp import web

from kitesim.orderbook import DeskConfig, OrderDesk
from kitesim.rest import historical, instruments, orders, portfolio, quotes, session, user
from kitesim.rest.keys import DESK, LIMITER, SHUTTING_DOWN, STATE
from kitesim.rest.pipeline import Route, kite_edge, kite_route
from kitesim.rest.ratelimit import RateLimiter
from kitesim.rest.sweeper import order_sweeper
from kitesim.state import SimState

ROUTES: tuple[Route, ...] = (
    *session.ROUTES,
    *user.ROUTES,
    *instruments.ROUTES,
    *quotes.ROUTES,
    *historical.ROUTES,
    *orders.ROUTES,
    *portfolio.ROUTES,
)


async def _signal_shutdown(app: web.Application) -> None:
    app[SHUTTING_DOWN].set()


def register_routes(
    app: web.Application,
    state: SimState,
    config: DeskConfig | None = None,
    limiter: RateLimiter | None = None,
) -> None:
    """Add every REST route to ``app``, with the Kite edge middleware and the order sweep task."""
    app[STATE] = state
    app[DESK] = OrderDesk(config)
    app[LIMITER] = limiter or RateLimiter()
    app[SHUTTING_DOWN] = asyncio.Event()
    instruments.install(app)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, kite_route(route))
    app.middlewares.append(kite_edge)
    app.on_shutdown.append(_signal_shutdown)
    app.cleanup_ctx.append(order_sweeper)
