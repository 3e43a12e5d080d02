"""Parsing and checking an order request the way Kite's API and its pre-trade validation layer do.

Everything here raises :class:`InputException` (HTTP 400) and creates no order: Kite's validation layer
rejects such orders "before they are sent to the exchanges", so they never reach the order book.
Margin is the exception — an order short of funds is created and then REJECTED (see orderbook.py).
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from kitesim.errors import InputException
from kitesim.timefmt import ist_date

if TYPE_CHECKING:
    from kitesim.universe import SimInstrument

VARIETIES = frozenset({"regular", "amo", "co", "iceberg", "auction"})
SUPPORTED_VARIETIES = frozenset({"regular"})
EXCHANGES = frozenset({"NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX"})
TRANSACTION_TYPES = frozenset({"BUY", "SELL"})
ORDER_TYPES = frozenset({"MARKET", "LIMIT", "SL", "SL-M"})
STOP_TYPES = frozenset({"SL", "SL-M"})
PRODUCTS = frozenset({"CNC", "NRML", "MIS", "MTF"})
DERIVATIVE_PRODUCTS = frozenset({"NRML", "MIS"})
VALIDITIES = frozenset({"DAY", "IOC", "TTL"})
TAG_PATTERN = re.compile(r"[A-Za-z0-9 _.:-]{1,20}", re.ASCII)
PRICE_EPSILON = 1e-6
MAX_SLICES = 10  # Kite's autoslice places at most 10 orders
NOT_TRADABLE = "The instrument you are placing an order for has either expired or does not exist."


@dataclass(frozen=True)
class OrderRequest:
    variety: str
    exchange: str
    tradingsymbol: str
    transaction_type: str
    order_type: str
    product: str
    quantity: int
    price: float = 0.0
    trigger_price: float = 0.0
    validity: str = "DAY"
    validity_ttl: int = 0
    disclosed_quantity: int = 0
    market_protection: float = 0.0
    tag: str | None = None

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"

    @property
    def is_buy(self) -> bool:
        return self.transaction_type == "BUY"


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InputException(f"Missing `{name}`.")
    return value


def _choice(value: str, allowed: frozenset[str], name: str) -> str:
    if value not in allowed:
        raise InputException(f"Invalid `{name}`.")
    return value


def _int(form: Mapping[str, str], name: str, default: int = 0) -> int:
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputException(f"Invalid `{name}`.") from None


def _float(form: Mapping[str, str], name: str, default: float = 0.0) -> float:
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InputException(f"Invalid `{name}`.") from None
    if not math.isfinite(value):
        raise InputException(f"Invalid `{name}`.")
    return value


def _variety(variety: str) -> str:
    _choice(variety, VARIETIES, "variety")
    if variety not in SUPPORTED_VARIETIES:
        raise InputException(f"Variety `{variety}` is not available on this simulator; use `regular`.")
    return variety


def _tag(form: Mapping[str, str]) -> str | None:
    tag = form.get("tag")
    if tag is None or tag == "":
        return None
    if not TAG_PATTERN.fullmatch(tag):
        raise InputException("Invalid `tag`: at most 20 alphanumeric characters.")
    return tag


def parse_place(variety: str, form: Mapping[str, str]) -> OrderRequest:
    """The form body of ``POST /orders/{variety}`` as an OrderRequest (shape checks only)."""
    return OrderRequest(
        variety=_variety(variety),
        exchange=_choice(_required(form, "exchange"), EXCHANGES, "exchange"),
        tradingsymbol=_required(form, "tradingsymbol"),
        transaction_type=_choice(_required(form, "transaction_type"), TRANSACTION_TYPES, "transaction_type"),
        order_type=_choice(_required(form, "order_type"), ORDER_TYPES, "order_type"),
        product=_choice(_required(form, "product"), PRODUCTS, "product"),
        quantity=_int(form, "quantity"),
        price=_float(form, "price"),
        trigger_price=_float(form, "trigger_price"),
        validity=_choice(form.get("validity") or "DAY", VALIDITIES, "validity"),
        validity_ttl=_int(form, "validity_ttl"),
        disclosed_quantity=_int(form, "disclosed_quantity"),
        market_protection=_float(form, "market_protection"),
        tag=_tag(form),
    )


def parse_modify(current: OrderRequest, form: Mapping[str, str]) -> OrderRequest:
    """``PUT /orders/{variety}/{order_id}``: the fields the client may change, the rest kept."""
    order_type = form.get("order_type") or current.order_type
    return replace(
        current,
        order_type=_choice(order_type, ORDER_TYPES, "order_type"),
        quantity=_int(form, "quantity", current.quantity),
        price=_float(form, "price", current.price),
        trigger_price=_float(form, "trigger_price", current.trigger_price),
        validity=_choice(form.get("validity") or current.validity, VALIDITIES, "validity"),
        disclosed_quantity=_int(form, "disclosed_quantity", current.disclosed_quantity),
        market_protection=_float(form, "market_protection", current.market_protection),
    )


def on_tick(value: float, tick_size: float) -> bool:
    if tick_size <= 0:
        return True
    steps = value / tick_size
    return abs(steps - round(steps)) * tick_size < PRICE_EPSILON


def check_instrument(instrument: "SimInstrument | None", now: float) -> "SimInstrument":
    """The instrument when it can be traded at ``now``; indices and expired contracts cannot."""
    if instrument is None or instrument.segment == "INDICES":
        raise InputException(NOT_TRADABLE)
    expiry: date | None = instrument.expiry
    if expiry is not None and expiry < ist_date(now).date():
        raise InputException(NOT_TRADABLE)
    return instrument


def _check_quantity(request: OrderRequest, instrument: "SimInstrument") -> None:
    if request.quantity <= 0:
        raise InputException("Invalid `quantity`.")
    lot = instrument.lot_size
    if lot > 1 and request.quantity % lot:
        raise InputException(f"Quantity should be a multiple of lot size ({lot}).")
    freeze = instrument.freeze_quantity
    if freeze > 0 and request.quantity > freeze:
        raise InputException(
            f"Quantity {request.quantity} exceeds the freeze limit of {freeze}. Split the order into smaller ones."
        )
    if request.disclosed_quantity and instrument.exchange in ("NFO", "BFO"):
        raise InputException("Disclosed quantity is not allowed for F&O orders.")
    if request.disclosed_quantity < 0 or request.disclosed_quantity > request.quantity:
        raise InputException("Invalid `disclosed_quantity`.")


def _check_prices(request: OrderRequest, instrument: "SimInstrument") -> None:
    if request.price < 0 or request.trigger_price < 0:
        raise InputException("Invalid `price`.")
    if request.order_type in ("LIMIT", "SL") and request.price <= 0:
        raise InputException(f"Invalid `price`: a {request.order_type} order needs a price.")
    if request.order_type in STOP_TYPES and request.trigger_price <= 0:
        raise InputException("Invalid `trigger_price`: a stoploss order needs a trigger price.")
    tick = instrument.tick_size
    if request.order_type in ("LIMIT", "SL") and not on_tick(request.price, tick):
        raise InputException(f"Tick size for this script is {tick:g}. Kindly enter price in the multiple of tick size.")
    if request.order_type in STOP_TYPES and not on_tick(request.trigger_price, tick):
        raise InputException(
            f"Tick size for this script is {tick:g}. Kindly enter trigger price in the multiple of tick size."
        )


def _check_stop(request: OrderRequest, last_price: float | None) -> None:
    if request.order_type == "SL":
        if request.is_buy and request.trigger_price > request.price:
            raise InputException("Trigger price for stoploss buy orders should not be above the order price.")
        if not request.is_buy and request.trigger_price < request.price:
            raise InputException("Trigger price for stoploss sell orders should not be below the order price.")
    if last_price is None or last_price <= 0:
        return
    if request.is_buy and request.trigger_price < last_price:
        raise InputException("Trigger price for stoploss buy orders should be higher than the last traded price.")
    if not request.is_buy and request.trigger_price > last_price:
        raise InputException("Trigger price for stoploss sell orders should be lower than the last traded price.")


def _check_terms(request: OrderRequest, instrument: "SimInstrument") -> None:
    if instrument.exchange in ("NFO", "BFO") and request.product not in DERIVATIVE_PRODUCTS:
        raise InputException(f"Product `{request.product}` is not allowed for F&O instruments; use NRML or MIS.")
    if request.validity == "TTL" and request.validity_ttl < 1:
        raise InputException("Invalid `validity_ttl`: TTL orders need a validity in minutes.")
    if request.validity == "IOC" and request.order_type in STOP_TYPES:
        raise InputException("IOC validity is not allowed for stoploss orders.")
    protection = request.market_protection
    if protection != -1 and not 0 <= protection <= 100:
        raise InputException("Invalid `market_protection`: -1 or a percentage up to 100.")
    if protection and request.order_type not in ("MARKET", "SL-M"):
        raise InputException("Market protection is only allowed for MARKET and SL-M orders.")


def check_request(
    request: OrderRequest, instrument: "SimInstrument", last_price: float | None, *, triggered: bool = False
) -> None:
    """Kite's pre-trade checks; ``triggered`` skips the trigger-vs-LTP rule for a fired stoploss."""
    _check_terms(request, instrument)
    _check_quantity(request, instrument)
    _check_prices(request, instrument)
    if request.order_type in STOP_TYPES and not triggered:
        _check_stop(request, last_price)


def slice_quantities(quantity: int, instrument: "SimInstrument") -> list[int]:
    """Kite's autoslice: full freeze-size slices (rounded down to whole lots) and the remainder.

    Kite refuses slicing below two slices' worth ("Quantity should be greater than or equal to 3510 for
    order slicing." for NIFTY's 1800 freeze at lot 65) and places at most ten slices.
    """
    lot = max(instrument.lot_size, 1)
    if quantity <= 0 or quantity % lot:
        raise InputException(f"Quantity should be a multiple of lot size ({lot}).")
    size = instrument.freeze_quantity // lot * lot
    if size <= 0 or quantity < 2 * size:
        minimum = 2 * size if size > 0 else quantity + lot
        raise InputException(f"Quantity should be greater than or equal to {minimum} for order slicing.")
    if quantity > MAX_SLICES * size:
        raise InputException(f"Quantity should be less than or equal to {MAX_SLICES * size} for order slicing.")
    full, rest = divmod(quantity, size)
    return [size] * full + ([rest] if rest else [])
