"""``/portfolio/positions`` and ``/portfolio/holdings`` (the simulator lists no equities, so no holdings)."""

from aiohttp import web

from kitesim.rest.auth import request_account
from kitesim.rest.envelope import success
from kitesim.rest.keys import DESK, STATE
from kitesim.rest.pipeline import Route


async def positions(request: web.Request) -> web.Response:
    book = request.app[DESK].book(request_account(request))
    return success(book.positions(request.app[STATE].market))


async def holdings(request: web.Request) -> web.Response:
    return success([])


async def auction_instruments(request: web.Request) -> web.Response:
    return success([])


ROUTES = (
    Route("GET", "/portfolio/positions", positions),
    Route("GET", "/portfolio/holdings", holdings),
    Route("GET", "/portfolio/holdings/auctions", auction_instruments),
)
