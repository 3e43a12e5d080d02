"""``/instruments`` and ``/instruments/{exchange}``: Kite's CSV dump of the current session's universe."""

from aiohttp import web

from kitesim.errors import InputException
from kitesim.order_rules import EXCHANGES
from kitesim.rest.envelope import csv_response
from kitesim.rest.keys import STATE
from kitesim.rest.pipeline import Route
from kitesim.universe import Universe


class CsvDumps:
    """The CSV texts of one universe, built on first request (the market swaps universes at a roll)."""

    def __init__(self) -> None:
        self._universe: Universe | None = None
        self._texts: dict[str | None, str] = {}

    def text(self, universe: Universe, exchange: str | None) -> str:
        if universe is not self._universe:
            self._universe, self._texts = universe, {}
        if exchange not in self._texts:
            self._texts[exchange] = universe.csv(exchange)
        return self._texts[exchange]


DUMPS = web.AppKey("kitesim_rest_csv_dumps", CsvDumps)


def _dump(request: web.Request, exchange: str | None) -> web.Response:
    universe = request.app[STATE].market.universe
    return csv_response(request.app[DUMPS].text(universe, exchange))


async def all_instruments(request: web.Request) -> web.Response:
    return _dump(request, None)


async def exchange_instruments(request: web.Request) -> web.Response:
    exchange = request.match_info["exchange"]
    if exchange not in EXCHANGES:
        raise InputException("Invalid `exchange`.")
    return _dump(request, exchange)


def install(app: web.Application) -> None:
    app[DUMPS] = CsvDumps()


ROUTES = (
    Route("GET", "/instruments", all_instruments),
    Route("GET", "/instruments/{exchange}", exchange_instruments),
)
