"""``/instruments/historical/{instrument_token}/{interval}``: candles with Kite's limits and errors."""

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kitesim.errors import InputException
from kitesim.rest.envelope import success
from kitesim.rest.keys import STATE
from kitesim.rest.pipeline import Route
from kitesim.timefmt import ist_candle_timestamp, parse_ist
from kitesim.universe import SimInstrument
from ticks.bars.intervals import KITE_MAX_SPAN_DAYS as MAX_SPAN_DAYS

NO_CANDLES = "No candles found based on token and time and candleType."


@dataclass(frozen=True)
class CandleQuery:
    instrument: SimInstrument
    interval: str
    start: float
    end: float
    continuous: bool
    oi: bool


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "0")
    if value not in ("0", "1", "true", "false"):
        raise InputException(f"Invalid `{name}`: use 0 or 1.")
    return value in ("1", "true")


def _instant(request: web.Request, name: str) -> float:
    value = request.query.get(name, "")
    if not value:
        raise InputException(f"Missing `{name}`.")
    try:
        return parse_ist(value)
    except ValueError:
        raise InputException(f"Invalid `{name}` date: use yyyy-mm-dd hh:mm:ss.") from None


def _instrument(request: web.Request, token_text: str) -> SimInstrument:
    instrument = None
    if token_text.isdigit():
        instrument = request.app[STATE].market.universe.by_token(int(token_text))
    if instrument is None:
        raise InputException("invalid token")
    return instrument


def parse_query(request: web.Request) -> CandleQuery:
    interval = request.match_info["interval"]
    if interval not in MAX_SPAN_DAYS:
        raise InputException("invalid interval")
    instrument = _instrument(request, request.match_info["instrument_token"])
    start, end = _instant(request, "from"), _instant(request, "to")
    if start > end:
        raise InputException("Invalid date range: `from` is after `to`.")
    limit = MAX_SPAN_DAYS[interval]
    if end - start > limit * 86_400:
        raise InputException(f"interval exceeds max limit: {limit} days")
    query = CandleQuery(instrument, interval, start, end, _flag(request, "continuous"), _flag(request, "oi"))
    if query.continuous and (instrument.instrument_type != "FUT" or interval != "day"):
        raise InputException("Continuous data is only available for futures, in day candles.")
    return query


def candle_rows(candles: list[tuple[Any, ...]], with_oi: bool) -> list[list[Any]]:
    """Kite's candle arrays: [timestamp, open, high, low, close, volume(, oi)]."""
    width = 7 if with_oi else 6
    return [[ist_candle_timestamp(candle[0]), *candle[1:width]] for candle in candles]


async def historical(request: web.Request) -> web.Response:
    query = parse_query(request)
    market = request.app[STATE].market
    try:
        candles = market.candles(query.instrument.instrument_token, query.interval, query.start, query.end)
    except KeyError:
        raise InputException("invalid token") from None
    if not candles:
        raise InputException(NO_CANDLES)
    return success({"candles": candle_rows(candles, query.oi)})


ROUTES = (
    Route("GET", "/instruments/historical/{instrument_token}/{interval}", historical, bucket="historical"),
)
