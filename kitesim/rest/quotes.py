"""``/quote`` (full), ``/quote/ohlc`` and ``/quote/ltp``: keyed by the requested ``i`` strings.

Unknown or expired keys are left out rather than refused, as Kite does. A key is ``EXCHANGE:SYMBOL``
or a bare instrument token.
"""

from collections.abc import Callable
from typing import Any

from aiohttp import web

from kitesim.errors import InputException
from kitesim.market import Quote
from kitesim.rest.envelope import success
from kitesim.rest.keys import STATE
from kitesim.rest.pipeline import Route
from kitesim.timefmt import ist_timestamp
from kitesim.universe import SimInstrument

FULL_LIMIT = 500
LIGHT_LIMIT = 1000
FUTURE_BAND = 0.10  # futures price band either side of the previous close

Shape = Callable[[SimInstrument, Quote], dict[str, Any]]


def _ohlc(quote: Quote) -> dict[str, float]:
    return {"open": quote.open, "high": quote.high, "low": quote.low, "close": quote.close}


def _depth(levels: list[Any]) -> list[dict[str, Any]]:
    return [{"price": level.price, "quantity": level.quantity, "orders": level.orders} for level in levels]


def _on_tick(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 2)


def _circuit(instrument: SimInstrument, quote: Quote) -> tuple[float, float]:
    """Simulated price bands: futures +-10% of the previous close; options from one tick to twice the
    higher of close and last (NSE's option bands are wide and widen as the price runs)."""
    tick = instrument.tick_size
    if instrument.is_index or tick <= 0 or quote.close <= 0:
        return 0.0, 0.0
    if instrument.instrument_type == "FUT":
        return _on_tick(quote.close * (1 - FUTURE_BAND), tick), _on_tick(quote.close * (1 + FUTURE_BAND), tick)
    return tick, _on_tick(2 * max(quote.close, quote.last_price), tick)


def ltp_entry(instrument: SimInstrument, quote: Quote) -> dict[str, Any]:
    return {"instrument_token": instrument.instrument_token, "last_price": quote.last_price}


def ohlc_entry(instrument: SimInstrument, quote: Quote) -> dict[str, Any]:
    return {**ltp_entry(instrument, quote), "ohlc": _ohlc(quote)}


def full_entry(instrument: SimInstrument, quote: Quote) -> dict[str, Any]:
    """Kite's full quote; REST keeps the old field names (``volume``, ``last_quantity``, ...)."""
    lower, upper = _circuit(instrument, quote)
    return {
        "instrument_token": instrument.instrument_token,
        "timestamp": ist_timestamp(quote.timestamp),
        "last_trade_time": ist_timestamp(quote.last_trade_time),
        "last_price": quote.last_price,
        "last_quantity": quote.last_traded_quantity,
        "buy_quantity": quote.buy_quantity,
        "sell_quantity": quote.sell_quantity,
        "volume": quote.volume,
        "average_price": quote.average_traded_price,
        "oi": quote.oi,
        "oi_day_high": quote.oi_day_high,
        "oi_day_low": quote.oi_day_low,
        "net_change": round(quote.last_price - quote.close, 2) if quote.close else 0.0,
        "lower_circuit_limit": lower,
        "upper_circuit_limit": upper,
        "ohlc": _ohlc(quote),
        "depth": {"buy": _depth(quote.bids), "sell": _depth(quote.asks)},
    }


def _requested(request: web.Request, limit: int) -> list[str]:
    keys = [key for key in request.query.getall("i", []) if key]
    if not keys:
        raise InputException("No instruments requested: pass `i=EXCHANGE:TRADINGSYMBOL`.")
    if len(keys) > limit:
        raise InputException(f"Too many instruments: at most {limit} per request.")
    return keys


def _resolve(request: web.Request, key: str) -> SimInstrument | None:
    universe = request.app[STATE].market.universe
    return universe.by_token(int(key)) if key.isdigit() else universe.by_key(key)


def _answer(request: web.Request, limit: int, shape: Shape) -> web.Response:
    market = request.app[STATE].market
    data: dict[str, Any] = {}
    for key in _requested(request, limit):
        instrument = _resolve(request, key)
        if instrument is None:
            continue
        try:
            quote = market.quote(instrument.instrument_token)
        except KeyError:
            continue
        data[key] = shape(instrument, quote)
    return success(data)


async def full(request: web.Request) -> web.Response:
    return _answer(request, FULL_LIMIT, full_entry)


async def ohlc(request: web.Request) -> web.Response:
    return _answer(request, LIGHT_LIMIT, ohlc_entry)


async def ltp(request: web.Request) -> web.Response:
    return _answer(request, LIGHT_LIMIT, ltp_entry)


ROUTES = (
    Route("GET", "/quote", full, bucket="quote"),
    Route("GET", "/quote/ohlc", ohlc, bucket="quote"),
    Route("GET", "/quote/ltp", ltp, bucket="quote"),
)
