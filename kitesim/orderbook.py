"""The simulated order engine: Kite's order lifecycle, fills against the market model, postbacks.

Pure: no aiohttp, no clock — every call takes ``now`` (simulated epoch seconds) and the quotes it needs.
One :class:`OrderBook` per api_key; :class:`OrderDesk` holds them and mints ids shared across books.

Lifecycle (statuses as Kite writes them in the order history):
  PUT ORDER REQ RECEIVED -> VALIDATION PENDING -> OPEN PENDING -> OPEN | TRIGGER PENDING -> COMPLETE
  VALIDATION PENDING -> REJECTED (insufficient funds)
  OPEN | TRIGGER PENDING -> CANCEL PENDING -> CANCELLED
  OPEN | TRIGGER PENDING -> MODIFY VALIDATION PENDING -> MODIFY PENDING -> MODIFIED -> OPEN | TRIGGER PENDING
An order update (postback payload) is queued for every state change after placement that a client can
act on: OPEN / TRIGGER PENDING, UPDATE (a modification), COMPLETE, CANCELLED and REJECTED.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kitesim.errors import InputException, NetworkException, OrderException
from kitesim.order_fills import match_price, stop_triggered
from kitesim.order_rules import STOP_TYPES, OrderRequest, check_instrument, check_request, parse_modify
from kitesim.positions import (
    Fill,
    MarginUse,
    build_positions,
    order_margin,
    positions_margin,
    positions_payload,
    segment_margins,
)
from kitesim.timefmt import ist_date, ist_timestamp

if TYPE_CHECKING:
    from kitesim.accounts import SimAccount
    from kitesim.order_fills import QuoteView
    from kitesim.universe import SimInstrument

RESTING = frozenset({"OPEN", "TRIGGER PENDING"})
FINAL = frozenset({"COMPLETE", "CANCELLED", "REJECTED"})


class QuoteSource(Protocol):
    def quote(self, token: int) -> "QuoteView": ...


@dataclass(frozen=True)
class DeskConfig:
    opening_balance: float = 5_000_000.0  # simulated cash per account, rupees
    span_rate: float = 0.12               # margin per unit of futures / short options, see positions.py
    max_modifications: int = 25           # Kite allows 25 modifications per order


class IdMint:
    """Kite-shaped ids: 15-digit order ids (yymmdd + sequence), 16-digit exchange ids, 8-digit trade ids."""

    def __init__(self) -> None:
        self._orders = 0
        self._trades = 0

    def order_id(self, now: float) -> tuple[str, str]:
        self._orders += 1
        return f"{ist_date(now):%y%m%d}{self._orders:09d}", f"{1_100_000_000_000_000 + self._orders}"

    def trade_id(self) -> str:
        self._trades += 1
        return f"{10_000_000 + self._trades}"


@dataclass
class Order:
    order_id: str
    exchange_order_id: str
    request: OrderRequest
    instrument: "SimInstrument"
    placed_by: str
    order_timestamp: float
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    status_message_raw: str | None = None
    at_exchange: bool = False
    exchange_timestamp: float | None = None
    exchange_update_timestamp: float | None = None
    filled_quantity: int = 0
    average_price: float = 0.0
    cancelled_quantity: int = 0
    modifications: int = 0
    triggered: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending_quantity(self) -> int:
        if self.status in FINAL:
            return 0
        return self.request.quantity - self.filled_quantity - self.cancelled_quantity

    def as_dict(self) -> dict[str, Any]:
        """Kite's order object."""
        req = self.request
        payload: dict[str, Any] = {
            "account_id": self.placed_by,
            "placed_by": self.placed_by,
            "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id if self.at_exchange else None,
            "parent_order_id": None,
            "status": self.status,
            "status_message": self.status_message,
            "status_message_raw": self.status_message_raw,
            "order_timestamp": ist_timestamp(self.order_timestamp),
            "exchange_update_timestamp": _optional_timestamp(self.exchange_update_timestamp),
            "exchange_timestamp": _optional_timestamp(self.exchange_timestamp),
            "variety": req.variety,
            "modified": self.modifications > 0,
            "exchange": req.exchange,
            "tradingsymbol": req.tradingsymbol,
            "instrument_token": self.instrument.instrument_token,
            "order_type": req.order_type,
            "transaction_type": req.transaction_type,
            "validity": req.validity,
            "validity_ttl": req.validity_ttl,
            "product": req.product,
            "quantity": req.quantity,
            "disclosed_quantity": req.disclosed_quantity,
            "price": req.price,
            "trigger_price": req.trigger_price,
            "average_price": self.average_price,
            "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity,
            "cancelled_quantity": self.cancelled_quantity,
            "market_protection": req.market_protection,
            "meta": {},
            "tag": req.tag,
            "guid": hashlib.sha256(self.order_id.encode()).hexdigest()[:18],
        }
        if req.tag:
            payload["tags"] = [req.tag]
        return payload


def _optional_timestamp(epoch: float | None) -> str | None:
    return None if epoch is None else ist_timestamp(epoch)


def _quote_or_none(quotes: QuoteSource, token: int) -> "QuoteView | None":
    try:
        return quotes.quote(token)
    except KeyError:
        return None


def postback_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    """Kite's postback checksum: sha256(order_id + order_timestamp + api_secret)."""
    return hashlib.sha256(f"{order_id}{order_timestamp}{api_secret}".encode()).hexdigest()


def app_id_of(api_key: str) -> int:
    return int(hashlib.sha256(api_key.encode()).hexdigest()[:6], 16) % 100_000


class OrderBook:
    """One api_key's orders, trades and positions."""

    def __init__(self, account: "SimAccount", ids: IdMint, config: DeskConfig):
        self.account = account
        self.config = config
        self._ids = ids
        self._orders: dict[str, Order] = {}
        self._fills: list[Fill] = []
        self._outbox: list[dict[str, Any]] = []

    # -- reads ---------------------------------------------------------------------------------------

    def orders(self) -> list[dict[str, Any]]:
        return [order.as_dict() for order in self._orders.values()]

    def order(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise OrderException("Couldn't find that `order_id`.")
        return order

    def history(self, order_id: str) -> list[dict[str, Any]]:
        return [dict(step) for step in self.order(order_id).history]

    def trades(self, order_id: str | None = None) -> list[dict[str, Any]]:
        if order_id is not None:
            self.order(order_id)
        return [fill.as_dict() for fill in self._fills if order_id in (None, fill.order_id)]

    def positions(self, quotes: QuoteSource) -> dict[str, list[dict[str, Any]]]:
        def prices(token: int) -> tuple[float, float] | None:
            quote = _quote_or_none(quotes, token)
            return None if quote is None else (quote.last_price, quote.close)

        return positions_payload(self._fills, prices)

    def margins(self) -> dict[str, Any]:
        positions = build_positions(self._fills)
        realised = sum(position.realised for position in positions)
        return segment_margins(self.config.opening_balance, realised, self._margin_in_use())

    def drain_updates(self) -> list[dict[str, Any]]:
        updates, self._outbox = self._outbox, []
        return updates

    # -- writes --------------------------------------------------------------------------------------

    def place(
        self, request: OrderRequest, instrument: "SimInstrument | None", quote: "QuoteView | None", now: float
    ) -> Order:
        """Validate and place; raises InputException (no order) or returns the order in its new state."""
        instrument = check_instrument(instrument, now)
        check_request(request, instrument, quote.last_price if quote else None)
        order_id, exchange_order_id = self._ids.order_id(now)
        order = Order(order_id, exchange_order_id, request, instrument, self.account.user_id, now)
        self._orders[order_id] = order
        self._record(order, now)
        self._record(order, now, "VALIDATION PENDING")
        required, available = self._margin_check(order, quote)
        if required > available + 1e-9:
            self._reject_for_margin(order, required, available, now)
            return order
        self._enter_exchange(order, now)
        self._after_entry(order, quote, now)
        return order

    def modify(self, order_id: str, variety: str, form: Mapping[str, str], quote: "QuoteView | None",
               now: float) -> Order:
        order = self._resting(order_id, variety, "modified")
        if order.modifications >= self.config.max_modifications:
            raise NetworkException("Maximum allowed order modifications exceeded.", status=400)
        request = parse_modify(order.request, form)
        if request.order_type in STOP_TYPES and order.request.order_type not in STOP_TYPES:
            order.triggered = False
        check_request(request, order.instrument, quote.last_price if quote else None, triggered=order.triggered)
        order.request = request
        order.modifications += 1
        for status in ("MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED"):
            self._record(order, now, status)
        self._record(order, now, self._resting_status(order))
        self._publish(order, status="UPDATE")
        self._after_entry(order, quote, now, publish_resting=False)
        return order

    def cancel(self, order_id: str, variety: str, now: float) -> Order:
        order = self._resting(order_id, variety, "cancelled")
        self._record(order, now, "CANCEL PENDING")
        self._cancel(order, now)
        return order

    def sweep(self, quotes: QuoteSource, now: float) -> None:
        """Re-check every resting order against the market: triggers, fills, TTL expiry."""
        for order in list(self._orders.values()):
            if order.status not in RESTING:
                continue
            if self._ttl_expired(order, now):
                self._cancel(order, now)
                continue
            quote = _quote_or_none(quotes, order.instrument.instrument_token)
            if quote is not None:
                self._try_fill(order, quote, now, aggressive=False)

    # -- lifecycle steps -----------------------------------------------------------------------------

    def _record(self, order: Order, now: float, status: str | None = None) -> None:
        if status is not None:
            order.status = status
        if order.at_exchange:
            order.exchange_update_timestamp = now
        order.history.append(order.as_dict())

    def _publish(self, order: Order, status: str | None = None) -> None:
        payload = order.as_dict()
        if status is not None:
            payload["status"] = status
        payload["user_id"] = self.account.user_id
        payload["unfilled_quantity"] = order.pending_quantity
        payload["app_id"] = app_id_of(self.account.api_key)
        payload["checksum"] = postback_checksum(order.order_id, payload["order_timestamp"], self.account.api_secret)
        self._outbox.append(payload)

    def _resting(self, order_id: str, variety: str, verb: str) -> Order:
        order = self.order(order_id)
        if order.request.variety != variety:
            raise InputException("Invalid `variety` for this order.")
        if order.status not in RESTING:
            raise OrderException(f"Order cannot be {verb} as it is {order.status.lower()}.")
        return order

    def _resting_status(self, order: Order) -> str:
        stop = order.request.order_type in STOP_TYPES
        return "TRIGGER PENDING" if stop and not order.triggered else "OPEN"

    def _enter_exchange(self, order: Order, now: float) -> None:
        self._record(order, now, "OPEN PENDING")
        order.at_exchange = True
        order.exchange_timestamp = now
        self._record(order, now, self._resting_status(order))

    def _after_entry(self, order: Order, quote: "QuoteView | None", now: float, *, publish_resting: bool = True) -> None:
        if publish_resting:
            self._publish(order)
        if quote is not None:
            self._try_fill(order, quote, now, aggressive=True)
        if order.request.validity == "IOC" and order.status == "OPEN":
            self._cancel(order, now)

    def _try_fill(self, order: Order, quote: "QuoteView", now: float, *, aggressive: bool) -> None:
        if order.status == "TRIGGER PENDING":
            if not stop_triggered(order.request, quote.last_price):
                return
            order.triggered = True
            self._record(order, now, "OPEN")
            self._publish(order)
            aggressive = True
        price = match_price(order.request, quote, aggressive=aggressive)
        if price is not None:
            self._fill(order, price, now)

    def _fill(self, order: Order, price: float, now: float) -> None:
        quantity = order.pending_quantity
        fill = Fill(self._ids.trade_id(), order.order_id, order.exchange_order_id, order.instrument,
                    order.request.product, order.request.transaction_type, quantity, price, now,
                    order.order_timestamp)
        self._fills.append(fill)
        total = order.filled_quantity + quantity
        order.average_price = round((order.average_price * order.filled_quantity + price * quantity) / total, 4)
        order.filled_quantity = total
        self._record(order, now, "COMPLETE")
        self._publish(order)

    def _cancel(self, order: Order, now: float) -> None:
        order.cancelled_quantity = order.pending_quantity
        self._record(order, now, "CANCELLED")
        self._publish(order)

    def _ttl_expired(self, order: Order, now: float) -> bool:
        request = order.request
        return request.validity == "TTL" and now >= order.order_timestamp + 60 * request.validity_ttl

    # -- margin --------------------------------------------------------------------------------------

    def _net_quantity(self, order: Order) -> int:
        token = order.instrument.instrument_token
        return sum(
            fill.signed_quantity
            for fill in self._fills
            if fill.instrument.instrument_token == token and fill.product == order.request.product
        )

    def _order_use(self, order: Order, quote: "QuoteView | None") -> MarginUse:
        request = order.request
        price = _reference_price(request, quote)
        return order_margin(order.instrument, request.is_buy, order.pending_quantity, price,
                            self._net_quantity(order), self.config.span_rate)

    def _margin_in_use(self, exclude: Order | None = None) -> MarginUse:
        used = positions_margin(build_positions(self._fills), self.config.span_rate)
        for order in self._orders.values():
            if order.status in RESTING and order is not exclude:
                used = used + self._order_use(order, None)
        return used

    def _margin_check(self, order: Order, quote: "QuoteView | None") -> tuple[float, float]:
        required = round(self._order_use(order, quote).total, 2)
        positions = build_positions(self._fills)
        realised = sum(position.realised for position in positions)
        available = self.config.opening_balance + realised - self._margin_in_use(exclude=order).total
        return required, round(available, 2)

    def _reject_for_margin(self, order: Order, required: float, available: float, now: float) -> None:
        order.status_message = (
            f"Insufficient funds. Required margin is {required:.2f} but available margin is "
            f"{available:.2f}. Check the orderbook for open orders."
        )
        order.status_message_raw = (
            f"RMS:Margin Exceeds,Required:{required:.2f}, Available:{available:.2f} for entity "
            f"account-{self.account.user_id} across exchange across segment across product "
        )
        self._record(order, now, "REJECTED")
        self._publish(order)


def _reference_price(request: OrderRequest, quote: "QuoteView | None") -> float:
    """The price margin is blocked at: the limit, the trigger for SL-M, else the touch."""
    if request.order_type in ("LIMIT", "SL"):
        return request.price
    if request.order_type == "SL-M":
        return request.trigger_price
    if quote is None:
        return 0.0
    touch = match_price(request, quote, aggressive=True)
    return touch if touch is not None else quote.last_price


class OrderDesk:
    """Every api_key's order book, created on first use."""

    def __init__(self, config: DeskConfig | None = None):
        self.config = config or DeskConfig()
        self._ids = IdMint()
        self._books: dict[str, OrderBook] = {}

    def book(self, account: "SimAccount") -> OrderBook:
        book = self._books.get(account.api_key)
        if book is None:
            book = self._books[account.api_key] = OrderBook(account, self._ids, self.config)
        return book

    def books(self) -> Sequence[OrderBook]:
        return list(self._books.values())

    def sweep(self, quotes: QuoteSource, now: float) -> dict[str, list[dict[str, Any]]]:
        """Sweep every book; the order updates each api_key should receive."""
        updates: dict[str, list[dict[str, Any]]] = {}
        for book in self._books.values():
            book.sweep(quotes, now)
            drained = book.drain_updates()
            if drained:
                updates[book.account.api_key] = drained
        return updates
