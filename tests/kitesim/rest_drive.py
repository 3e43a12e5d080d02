"""Driving kitesim's REST API with the official client: pacing, instrument choice, waiting on orders."""

import time
from collections.abc import Callable, Iterable
from typing import Any

from kiteconnect import KiteConnect

from kitesim.testing import KitesimThread
from kitesim.universe import SimInstrument

# Minimum host seconds between two calls of one route family, just above Kite's limits.
PACE_S = {"quote": 1.05, "historical": 0.36, "default": 0.11}


def _family(route: str) -> str:
    if route.startswith("market.quote"):
        return "quote"
    return "historical" if route == "market.historical" else "default"


class PacedKite(KiteConnect):
    """The official client, waiting between calls so it stays inside Kite's rate limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_call: dict[str, float] = {}

    def _request(self, route: str, method: str, *args: Any, **kwargs: Any) -> Any:
        family = _family(route)
        wait = self._last_call.get(family, 0.0) + PACE_S[family] - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            return super()._request(route, method, *args, **kwargs)
        finally:
            self._last_call[family] = time.monotonic()


def paced_client(server: KitesimThread, access_token: str | None = None, **kwargs: Any) -> PacedKite:
    return PacedKite(server.api_key, access_token=access_token or server.access_token, root=server.root, **kwargs)


def near_month_options(server: KitesimThread, kind: str = "CE") -> list[SimInstrument]:
    """NIFTY options of the nearest live expiry, nearest the money first."""
    market = server.state.market
    spot = market.quote(256265).last_price
    session = market.universe.session_date
    options = [i for i in market.universe.all()
               if i.underlying == "NIFTY" and i.instrument_type == kind and i.expiry and i.expiry > session]
    nearest = min(i.expiry for i in options)
    return sorted((i for i in options if i.expiry == nearest), key=lambda i: abs(i.strike - spot))


def atm_option(server: KitesimThread, kind: str = "CE") -> SimInstrument:
    return near_month_options(server, kind)[0]


def nifty_future(server: KitesimThread) -> SimInstrument:
    futures = [i for i in server.state.market.universe.all() if i.underlying == "NIFTY" and i.instrument_type == "FUT"]
    return min(futures, key=lambda i: i.expiry)


def touch(server: KitesimThread, instrument: SimInstrument) -> tuple[float, float, float]:
    """(best bid, best ask, last price) straight from the market model."""
    quote = server.call(server.state.market.quote, instrument.instrument_token)
    return quote.bids[0].price, quote.asks[0].price, quote.last_price


def ticks(instrument: SimInstrument, price: float, steps: int) -> float:
    """``price`` moved by ``steps`` ticks, on the tick grid and never below one tick."""
    tick = instrument.tick_size
    return round(max(tick, round(price / tick) * tick + steps * tick), 2)


def orders_by_id(kite: KiteConnect) -> dict[str, dict[str, Any]]:
    return {order["order_id"]: order for order in kite.orders()}


def advance_until(
    server: KitesimThread,
    done: Callable[[], bool],
    *,
    step_s: float = 60.0,
    attempts: int = 90,
    settle_s: float = 0.5,
) -> bool:
    """Jump simulated time ``step_s`` at a time until ``done()``; the server loop steps the market."""
    for _ in range(attempts):
        if done():
            return True
        server.call(server.state.clock.jump, step_s)
        time.sleep(settle_s)
    return done()


def statuses(history: Iterable[dict[str, Any]]) -> list[str]:
    return [step["status"] for step in history]
