"""Orders over HTTP: place (optionally auto-sliced) / modify / cancel, the order book, history, trades.

Order updates the engine queues are published to the api_key's WebSocket connections after every call.
The ``order_timeout_next`` fault holds a placement's response after the order is in the book, until
``ORDER_HOLD_SECONDS`` pass or the server shuts down, so the client times out while the order exists.
"""

import asyncio
import contextlib
from collections.abc import Mapping

from aiohttp import web

from kitesim.market import Quote
from kitesim.order_rules import parse_place
from kitesim.orderbook import OrderBook
from kitesim.rest.auth import request_account
from kitesim.rest.envelope import success
from kitesim.rest.keys import DESK, SHUTTING_DOWN, STATE
from kitesim.rest.pipeline import Route

ORDER_HOLD_SECONDS = 30.0


def _book(request: web.Request) -> OrderBook:
    return request.app[DESK].book(request_account(request))


def _quote(request: web.Request, token: int) -> Quote | None:
    try:
        return request.app[STATE].market.quote(token)
    except KeyError:
        return None


def _publish(request: web.Request, book: OrderBook) -> None:
    bus = request.app[STATE].order_updates
    for payload in book.drain_updates():
        bus.publish(book.account.api_key, payload)


async def _form(request: web.Request) -> Mapping[str, str]:
    form = await request.post()
    return {name: value for name, value in form.items() if isinstance(value, str)}


async def _hold_response(app: web.Application) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app[SHUTTING_DOWN].wait(), ORDER_HOLD_SECONDS)


async def place(request: web.Request) -> web.Response:
    form = await _form(request)
    order_request = parse_place(request.match_info["variety"], form)
    state, book = request.app[STATE], _book(request)
    instrument = state.market.universe.by_key(order_request.key)
    quote = _quote(request, instrument.instrument_token) if instrument else None
    try:
        if form.get("autoslice") == "true":
            data = book.place_autoslice(order_request, instrument, quote, state.clock.now())
        else:
            data = {"order_id": book.place(order_request, instrument, quote, state.clock.now()).order_id}
    finally:
        _publish(request, book)
    if state.faults.take("order_timeout_next"):
        await _hold_response(request.app)
    return success(data)


async def modify(request: web.Request) -> web.Response:
    book, state = _book(request), request.app[STATE]
    order = book.order(request.match_info["order_id"])
    quote = _quote(request, order.instrument.instrument_token)
    form = await _form(request)
    try:
        book.modify(order.order_id, request.match_info["variety"], form, quote, state.clock.now())
    finally:
        _publish(request, book)
    return success({"order_id": order.order_id})


async def cancel(request: web.Request) -> web.Response:
    book, state = _book(request), request.app[STATE]
    order_id = request.match_info["order_id"]
    try:
        book.cancel(order_id, request.match_info["variety"], state.clock.now())
    finally:
        _publish(request, book)
    return success({"order_id": order_id})


async def orders(request: web.Request) -> web.Response:
    return success(_book(request).orders())


async def order_history(request: web.Request) -> web.Response:
    return success(_book(request).history(request.match_info["order_id"]))


async def order_trades(request: web.Request) -> web.Response:
    return success(_book(request).trades(request.match_info["order_id"]))


async def trades(request: web.Request) -> web.Response:
    return success(_book(request).trades())


ROUTES = (
    Route("POST", "/orders/{variety}", place, bucket="order"),
    Route("PUT", "/orders/{variety}/{order_id}", modify),
    Route("DELETE", "/orders/{variety}/{order_id}", cancel),
    Route("GET", "/orders", orders),
    Route("GET", "/orders/{order_id}", order_history),
    Route("GET", "/orders/{order_id}/trades", order_trades),
    Route("GET", "/trades", trades),
)
