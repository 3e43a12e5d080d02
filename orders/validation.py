"""What an order must satisfy before anything reaches Kite (pure: the caller passes the instrument and ``now``).

Each failure raises :class:`OrderInvalid` naming the request field a client should fix. Checks that need
a live quote (a stop-loss trigger against the last price, margin) are Kite's: it answers them, and its
answer is final (REJECTED with Kite's message).
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ticks.exchange_calendar import market_calendar
from ticks.market_time import IST, MARKET_CLOSE

VARIETIES = ("regular", "amo", "co", "iceberg")
EXCHANGES = ("NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX")
TRANSACTION_TYPES = ("BUY", "SELL")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
PRODUCTS = ("CNC", "NRML", "MIS", "MTF")
VALIDITIES = ("DAY", "IOC", "TTL")

EQUITY_EXCHANGES = frozenset({"NSE", "BSE"})
PRICED_TYPES = frozenset({"LIMIT", "SL"})
STOP_TYPES = frozenset({"SL", "SL-M"})
MAX_TTL_MINUTES = 375  # one session, 09:15-15:30
ICEBERG_LEGS = range(2, 51)
MAX_MODIFICATIONS = 25  # Kite refuses the 26th modification of an order


class OrderInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """An order as the client asked for it, in Kite's parameter names."""

    variety: str
    exchange: str
    tradingsymbol: str
    transaction_type: str
    order_type: str
    product: str
    quantity: int
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    validity: str = "DAY"
    validity_ttl: int | None = None
    iceberg_legs: int | None = None
    autoslice: bool = False


@dataclass(frozen=True, slots=True)
class InstrumentFacts:
    exchange: str
    tradingsymbol: str
    segment: str
    tick_size: Decimal
    lot_size: int
    expiry: date | None
    is_active: bool
    freeze_quantity: int | None  # the exchange's largest quantity per order; None when unlimited


@dataclass(frozen=True, slots=True)
class Placement:
    """What goes to Kite: one order per slice quantity (one slice unless auto-sliced)."""

    slices: tuple[int, ...]
    iceberg_quantity: int | None = None


def market_open(now: datetime) -> bool:
    """The NSE/BSE session: 09:15-15:30 IST on the exchange calendar's sessions (no weekends, no holidays)."""
    return market_calendar().session_open(now)


def validate_place(
    terms: OrderTerms, instrument: InstrumentFacts | None, now: datetime, *, max_slices: int
) -> Placement:
    tradable = _check_instrument(instrument, terms, now)
    _check_session(terms, now)
    _check_variety(terms)
    _check_terms(terms, tradable)
    return _placement(terms, tradable, max_slices)


def validate_modify(terms: OrderTerms, instrument: InstrumentFacts | None, now: datetime) -> None:
    """A modification: the merged terms must be a valid order that fits in one slice."""
    tradable = _check_instrument(instrument, terms, now)
    _check_session(terms, now)
    _check_variety(terms)
    _check_terms(terms, tradable)
    freeze = tradable.freeze_quantity
    if terms.variety != "iceberg" and freeze and terms.quantity > freeze:
        raise OrderInvalid("quantity", f"Quantity {terms.quantity} exceeds the freeze quantity {freeze}.")


def _check_instrument(
    instrument: InstrumentFacts | None, terms: OrderTerms, now: datetime
) -> InstrumentFacts:
    name = f"{terms.exchange}:{terms.tradingsymbol}"
    if instrument is None or not instrument.is_active:
        raise OrderInvalid("tradingsymbol", f"No listed instrument {name}.")
    if instrument.segment == "INDICES" or instrument.tick_size <= 0 or instrument.lot_size < 1:
        raise OrderInvalid("tradingsymbol", f"{name} is an index or otherwise not tradable.")
    local = now.astimezone(IST)
    expiry = instrument.expiry
    if expiry is not None and (
        expiry < local.date() or (expiry == local.date() and local.time() >= MARKET_CLOSE)
    ):
        raise OrderInvalid("tradingsymbol", f"{name} expired on {expiry.isoformat()}.")
    return instrument


def _check_session(terms: OrderTerms, now: datetime) -> None:
    is_open = market_open(now)
    if terms.variety == "amo" and is_open:
        raise OrderInvalid("variety", "AMO orders are taken only outside market hours (09:15-15:30 IST).")
    if terms.variety != "amo" and not is_open:
        raise OrderInvalid(
            "variety", "The market is closed (09:15-15:30 IST on trading days): only AMO orders now."
        )


def _check_variety(terms: OrderTerms) -> None:
    if terms.variety == "co":
        _check_cover(terms)
    elif terms.variety == "iceberg":
        _check_iceberg(terms)
    elif terms.iceberg_legs is not None:
        raise OrderInvalid("iceberg_legs", "Only iceberg orders take iceberg_legs.")
    if terms.variety == "amo" and terms.validity == "TTL":
        raise OrderInvalid("validity", "AMO orders cannot have TTL validity.")
    if terms.autoslice and terms.variety not in ("regular", "amo"):
        raise OrderInvalid("autoslice", "Only regular and AMO orders can be auto-sliced.")


def _check_cover(terms: OrderTerms) -> None:
    if terms.order_type not in ("MARKET", "LIMIT"):
        raise OrderInvalid("order_type", "Cover orders are MARKET or LIMIT.")
    if terms.product != "MIS":
        raise OrderInvalid("product", "Cover orders are intraday: product MIS.")
    if terms.validity != "DAY":
        raise OrderInvalid("validity", "Cover orders are DAY orders.")
    if terms.trigger_price is None or terms.trigger_price <= 0:
        raise OrderInvalid("trigger_price", "A cover order needs its stop-loss trigger_price.")
    if terms.order_type == "LIMIT" and terms.price is not None:
        wrong_side = terms.trigger_price >= terms.price if _buy(terms) else terms.trigger_price <= terms.price
        if wrong_side:
            side = "below" if _buy(terms) else "above"
            raise OrderInvalid(
                "trigger_price",
                f"A {terms.transaction_type} cover order's stop-loss must be {side} its price.",
            )


def _check_iceberg(terms: OrderTerms) -> None:
    if terms.order_type not in PRICED_TYPES:
        raise OrderInvalid("order_type", "Iceberg orders are LIMIT or SL.")
    if terms.validity == "IOC":
        raise OrderInvalid("validity", "Iceberg orders cannot be IOC.")
    if terms.iceberg_legs is None or terms.iceberg_legs not in ICEBERG_LEGS:
        raise OrderInvalid(
            "iceberg_legs", f"Iceberg orders need {ICEBERG_LEGS.start}-{ICEBERG_LEGS.stop - 1} legs."
        )


def _check_terms(terms: OrderTerms, instrument: InstrumentFacts) -> None:
    if instrument.exchange not in EQUITY_EXCHANGES and terms.product not in ("NRML", "MIS"):
        raise OrderInvalid(
            "product", f"{instrument.exchange} contracts are NRML or MIS, not {terms.product}."
        )
    _check_prices(terms, instrument.tick_size)
    _check_validity(terms)
    lot = instrument.lot_size
    if terms.quantity <= 0 or terms.quantity % lot:
        raise OrderInvalid("quantity", f"Quantity must be a positive multiple of the lot size ({lot}).")


def _check_prices(terms: OrderTerms, tick: Decimal) -> None:
    price, trigger = terms.price, terms.trigger_price
    if terms.order_type in PRICED_TYPES:
        _check_on_tick("price", price, tick, f"A {terms.order_type} order needs a price")
    elif price is not None:
        raise OrderInvalid("price", f"A {terms.order_type} order takes no price.")
    if terms.order_type in STOP_TYPES or terms.variety == "co":
        _check_on_tick("trigger_price", trigger, tick, f"A {terms.order_type} order needs a trigger_price")
    elif trigger is not None:
        raise OrderInvalid("trigger_price", f"A {terms.order_type} order takes no trigger_price.")
    if terms.order_type == "SL" and price is not None and trigger is not None:
        if _buy(terms) and trigger > price:
            raise OrderInvalid(
                "trigger_price", "A stop-loss BUY's trigger_price must not be above its price."
            )
        if not _buy(terms) and trigger < price:
            raise OrderInvalid(
                "trigger_price", "A stop-loss SELL's trigger_price must not be below its price."
            )


def _check_on_tick(field: str, value: Decimal | None, tick: Decimal, missing: str) -> None:
    if value is None or value <= 0:
        raise OrderInvalid(field, f"{missing} above 0.")
    if value % tick:
        raise OrderInvalid(field, f"{value} is not a multiple of the tick size {tick.normalize()}.")


def _check_validity(terms: OrderTerms) -> None:
    if terms.validity == "TTL":
        if terms.validity_ttl is None or not 1 <= terms.validity_ttl <= MAX_TTL_MINUTES:
            raise OrderInvalid(
                "validity_ttl", f"TTL orders need validity_ttl in minutes, 1-{MAX_TTL_MINUTES}."
            )
    elif terms.validity_ttl is not None:
        raise OrderInvalid("validity_ttl", "Only TTL orders take validity_ttl.")
    if terms.validity == "IOC" and terms.order_type in STOP_TYPES:
        raise OrderInvalid("validity", "Stop-loss orders cannot be IOC.")


def _placement(terms: OrderTerms, instrument: InstrumentFacts, max_slices: int) -> Placement:
    quantity, lot, freeze = terms.quantity, instrument.lot_size, instrument.freeze_quantity
    if terms.variety == "iceberg":
        return _iceberg_placement(terms, instrument)
    if not freeze or quantity <= freeze:
        return Placement(slices=(quantity,))
    if not terms.autoslice:
        raise OrderInvalid(
            "quantity",
            f"Quantity {quantity} exceeds the freeze quantity {freeze}; send autoslice: true to have it split.",
        )
    size = freeze // lot * lot
    if size <= 0:
        raise OrderInvalid("quantity", f"The freeze quantity {freeze} is below one lot ({lot}).")
    full, rest = divmod(quantity, size)
    slices = (size,) * full + ((rest,) if rest else ())
    if len(slices) > max_slices:
        raise OrderInvalid(
            "quantity", f"Quantity {quantity} needs {len(slices)} slices; at most {max_slices}."
        )
    return Placement(slices=slices)


def _iceberg_placement(terms: OrderTerms, instrument: InstrumentFacts) -> Placement:
    legs = terms.iceberg_legs or 1
    leg, remainder = divmod(terms.quantity, legs)
    if remainder or leg % instrument.lot_size:
        raise OrderInvalid("iceberg_legs", f"{terms.quantity} does not split into {legs} legs of whole lots.")
    freeze = instrument.freeze_quantity
    if freeze and leg > freeze:
        raise OrderInvalid("iceberg_legs", f"Each leg ({leg}) must be within the freeze quantity {freeze}.")
    return Placement(slices=(terms.quantity,), iceberg_quantity=leg)


def _buy(terms: OrderTerms) -> bool:
    return terms.transaction_type == "BUY"
