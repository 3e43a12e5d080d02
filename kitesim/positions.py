"""Fills, the positions built from them, and the simulated margin account (pure).

The margin model is deliberately simple and documented here because Kite's is not public:
* buying an option blocks its premium (``option_premium``);
* selling an option blocks ``span_rate`` x strike per unit (``span``);
* a future blocks ``span_rate`` x price per unit either side (``span``);
* the part of an order that reduces an existing position of the same instrument and product needs none;
* realised P&L moves cash: ``net = opening_balance + realised - span - option_premium``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kitesim.timefmt import ist_timestamp

if TYPE_CHECKING:
    from kitesim.universe import SimInstrument

OPTION_TYPES = frozenset({"CE", "PE"})

# (last_price, close_price) of a token, or None when the market has no quote for it.
PriceLookup = Callable[[int], tuple[float, float] | None]


@dataclass(frozen=True)
class Fill:
    trade_id: str
    order_id: str
    exchange_order_id: str
    instrument: "SimInstrument"
    product: str
    transaction_type: str
    quantity: int
    price: float
    timestamp: float
    order_timestamp: float

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.transaction_type == "BUY" else -self.quantity

    def as_dict(self) -> dict[str, object]:
        """Kite's trade object."""
        return {
            "trade_id": self.trade_id,
            "order_id": self.order_id,
            "exchange": self.instrument.exchange,
            "tradingsymbol": self.instrument.tradingsymbol,
            "instrument_token": self.instrument.instrument_token,
            "product": self.product,
            "average_price": self.price,
            "quantity": self.quantity,
            "exchange_order_id": self.exchange_order_id,
            "transaction_type": self.transaction_type,
            "fill_timestamp": ist_timestamp(self.timestamp),
            "order_timestamp": ist_timestamp(self.order_timestamp),
            "exchange_timestamp": ist_timestamp(self.timestamp),
        }


@dataclass
class Position:
    instrument: "SimInstrument"
    product: str
    buy_quantity: int = 0
    buy_value: float = 0.0
    sell_quantity: int = 0
    sell_value: float = 0.0

    def add(self, fill: Fill) -> None:
        if fill.transaction_type == "BUY":
            self.buy_quantity += fill.quantity
            self.buy_value += fill.quantity * fill.price
        else:
            self.sell_quantity += fill.quantity
            self.sell_value += fill.quantity * fill.price

    @property
    def quantity(self) -> int:
        return self.buy_quantity - self.sell_quantity

    @property
    def buy_price(self) -> float:
        return self.buy_value / self.buy_quantity if self.buy_quantity else 0.0

    @property
    def sell_price(self) -> float:
        return self.sell_value / self.sell_quantity if self.sell_quantity else 0.0

    @property
    def average_price(self) -> float:
        if self.quantity > 0:
            return self.buy_price
        return self.sell_price if self.quantity < 0 else 0.0

    @property
    def realised(self) -> float:
        closed = min(self.buy_quantity, self.sell_quantity)
        return closed * (self.sell_price - self.buy_price)

    def pnl(self, last_price: float) -> float:
        """Kite's formula: (sell_value - buy_value) + quantity x last_price x multiplier."""
        return (self.sell_value - self.buy_value) + self.quantity * last_price

    def as_dict(self, last_price: float, close_price: float) -> dict[str, object]:
        """Kite's position object (every fill is from today, so day and net agree)."""
        pnl = money(self.pnl(last_price))
        realised = money(self.realised)
        return {
            "tradingsymbol": self.instrument.tradingsymbol,
            "exchange": self.instrument.exchange,
            "instrument_token": self.instrument.instrument_token,
            "product": self.product,
            "quantity": self.quantity,
            "overnight_quantity": 0,
            "multiplier": 1,
            "average_price": round(self.average_price, 4),
            "close_price": close_price,
            "last_price": last_price,
            "value": money(self.sell_value - self.buy_value),
            "pnl": pnl,
            "m2m": pnl,
            "unrealised": money(pnl - realised),
            "realised": realised,
            **self._side_fields(),
        }

    def _side_fields(self) -> dict[str, object]:
        buy_value, sell_value = money(self.buy_value), money(self.sell_value)
        return {
            "buy_quantity": self.buy_quantity,
            "buy_price": round(self.buy_price, 4),
            "buy_value": buy_value,
            "buy_m2m": buy_value,
            "sell_quantity": self.sell_quantity,
            "sell_price": round(self.sell_price, 4),
            "sell_value": sell_value,
            "sell_m2m": sell_value,
            "day_buy_quantity": self.buy_quantity,
            "day_buy_price": round(self.buy_price, 4),
            "day_buy_value": buy_value,
            "day_sell_quantity": self.sell_quantity,
            "day_sell_price": round(self.sell_price, 4),
            "day_sell_value": sell_value,
        }


def build_positions(fills: Iterable[Fill]) -> list[Position]:
    """One position per (instrument, product), in the order they were first traded."""
    positions: dict[tuple[int, str], Position] = {}
    for fill in fills:
        key = (fill.instrument.instrument_token, fill.product)
        position = positions.get(key)
        if position is None:
            position = positions[key] = Position(fill.instrument, fill.product)
        position.add(fill)
    return list(positions.values())


def positions_payload(fills: Iterable[Fill], prices: PriceLookup) -> dict[str, list[dict[str, object]]]:
    rows = []
    for position in build_positions(fills):
        quote = prices(position.instrument.instrument_token)
        last, close = quote if quote is not None else (position.average_price, position.average_price)
        rows.append(position.as_dict(last, close))
    return {"net": rows, "day": [dict(row) for row in rows]}


def unit_margin(instrument: "SimInstrument", is_buy: bool, price: float, span_rate: float) -> tuple[float, float]:
    """(span, option_premium) blocked per unit of a new exposure."""
    if instrument.instrument_type in OPTION_TYPES:
        return (0.0, price) if is_buy else (span_rate * instrument.strike, 0.0)
    return span_rate * price, 0.0


def opening_quantity(quantity: int, is_buy: bool, net_quantity: int) -> int:
    """How much of an order adds exposure rather than reducing the existing net position."""
    reducing = net_quantity < 0 if is_buy else net_quantity > 0
    if not reducing:
        return quantity
    return max(0, quantity - abs(net_quantity))


@dataclass(frozen=True)
class MarginUse:
    span: float = 0.0
    option_premium: float = 0.0

    def __add__(self, other: "MarginUse") -> "MarginUse":
        return MarginUse(self.span + other.span, self.option_premium + other.option_premium)

    @property
    def total(self) -> float:
        return self.span + self.option_premium


def order_margin(
    instrument: "SimInstrument", is_buy: bool, quantity: int, price: float, net_quantity: int, span_rate: float
) -> MarginUse:
    opening = opening_quantity(quantity, is_buy, net_quantity)
    span, premium = unit_margin(instrument, is_buy, price, span_rate)
    return MarginUse(span * opening, premium * opening)


def positions_margin(positions: Iterable[Position], span_rate: float) -> MarginUse:
    used = MarginUse()
    for position in positions:
        if position.quantity:
            is_buy = position.quantity > 0
            price = position.average_price
            span, premium = unit_margin(position.instrument, is_buy, price, span_rate)
            used = used + MarginUse(span * abs(position.quantity), premium * abs(position.quantity))
    return used


def money(value: float) -> float:
    """Rupees to the paisa, never ``-0.0``."""
    return round(value, 2) + 0.0


def segment_margins(opening_balance: float, realised: float, used: MarginUse) -> dict[str, object]:
    """Kite's ``/user/margins/{segment}`` object."""
    net = money(opening_balance + realised - used.total)
    return {
        "enabled": True,
        "net": net,
        "available": {
            "adhoc_margin": 0,
            "cash": opening_balance,
            "opening_balance": opening_balance,
            "live_balance": net,
            "collateral": 0,
            "intraday_payin": 0,
        },
        "utilised": {
            "debits": money(opening_balance - net),
            "exposure": 0,
            "m2m_realised": money(-realised),
            "m2m_unrealised": 0,
            "option_premium": money(used.option_premium),
            "payout": 0,
            "span": money(used.span),
            "holding_sales": 0,
            "turnover": 0,
            "liquid_collateral": 0,
            "stock_collateral": 0,
            "delivery": 0,
        },
    }
