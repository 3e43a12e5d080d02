"""When and at what price an order fills against a quote (pure).

* MARKET (and a triggered SL-M) fills at the touch: a buy at the best ask, a sell at the best bid.
* LIMIT (and a triggered SL) fills when the touch crosses the limit. An order that is marketable on
  arrival (placement, modification, trigger) takes the touch price; a resting order that the market
  later crosses fills at its own limit, as a resting order on an exchange does.
* With no depth on the needed side the last traded price stands in for the touch.
Fills are for the whole pending quantity (the simulator does not model partial fills).
"""

from collections.abc import Sequence
from typing import Protocol

from kitesim.order_rules import OrderRequest


class LevelView(Protocol):
    price: float
    quantity: int


class QuoteView(Protocol):
    last_price: float
    close: float
    bids: Sequence[LevelView]
    asks: Sequence[LevelView]


def touch_price(quote: QuoteView, is_buy: bool) -> float | None:
    """Best ask for a buy, best bid for a sell; the last price when that side is empty."""
    levels = quote.asks if is_buy else quote.bids
    for level in levels:
        if level.quantity > 0 and level.price > 0:
            return level.price
    return quote.last_price if quote.last_price > 0 else None


def stop_triggered(request: OrderRequest, last_price: float) -> bool:
    """A buy stop fires when the price rises to the trigger, a sell stop when it falls to it."""
    if last_price <= 0:
        return False
    if request.is_buy:
        return last_price >= request.trigger_price
    return last_price <= request.trigger_price


def match_price(request: OrderRequest, quote: QuoteView, *, aggressive: bool) -> float | None:
    """The fill price for ``request`` against ``quote`` now, or None when it does not fill."""
    touch = touch_price(quote, request.is_buy)
    if touch is None:
        return None
    if request.order_type in ("MARKET", "SL-M"):
        return touch
    crosses = touch <= request.price if request.is_buy else touch >= request.price
    if not crosses:
        return None
    return touch if aggressive else request.price
