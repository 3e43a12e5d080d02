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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from kitesim.errors import InputException, NetworkException, OrderException
from kitesim.order_fills import QuoteView, match_price, stop_triggered
from kitesim.order_record import FINAL, RESTING, IdMint, Order, postback_checksum, postback_payload
from kitesim.order_rules import (
    STOP_TYPES,
    OrderRequest,
    check_instrument,
    check_request,
    parse_modify,
    slice_quantities,
)
from kitesim.positions import (
    Fill,
    MarginUse,
    build_positions,
    order_margin,
    positions_margin,
    positions_payload,
    segment_margins,
)
from kitesim.timefmt import ist_date

if TYPE_CHECKING:
    from kitesim.accounts import SimAccount
    from kitesim.universe import SimInstrument

__all__ = ["FINAL", "RESTING", "DeskConfig", "OrderBook", "OrderDesk", "QuoteSource", "postback_checksum"]


class QuoteSource(Protocol):
    def quote(self, token: int) -> QuoteView: ...


@dataclass(frozen=True)
class DeskConfig:
    opening_balance: float = 5_000_000.0  # simulated cash per account, rupees
    span_rate: float = 0.12               # margin per unit of futures / short options, see positions.py
    max_modifications: int = 25           # Kite allows 25 modifications per order


def _quote_or_none(quotes: QuoteSource, token: int) -> QuoteView | None:
    try:
        return quotes.quote(token)
    except KeyError:
        return None


def _expired(order: Order, now: float) -> bool:
    """A TTL order past its minutes, or any order still resting after its trading day ended."""
    request = order.request
    if request.validity == "TTL" and now >= order.order_timestamp + 60 * request.validity_ttl:
        return True
    return ist_date(now).date() != ist_date(order.order_timestamp).date()


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
        self, request: OrderRequest, instrument: "SimInstrument | None", quote: QuoteView | None, now: float,
        *, slice_of: str | None = None,
    ) -> Order:
        """Validate and place; raises InputException (no order) or returns the order in its new state.

        ``slice_of`` marks an autoslice child: "" for the first slice (it is the parent), else the parent id.
        """
        instrument = check_instrument(instrument, now)
        check_request(request, instrument, quote.last_price if quote else None)
        order_id, exchange_order_id = self._ids.order_id(now)
        order = Order(order_id, exchange_order_id, request, instrument, self.account.user_id, now)
        if slice_of is not None:
            order.system_tags = ("autoslice", f"autoslice:{slice_of or order_id}")
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

    def place_autoslice(
        self, request: OrderRequest, instrument: "SimInstrument | None", quote: QuoteView | None, now: float
    ) -> dict[str, Any]:
        """``autoslice=true``: one order per slice; the first slice's id is the parent ``order_id``.

        Slices differ only in quantity, each within the freeze limit, so they pass or fail validation
        together: a refusal raises before any is placed (a slice short of funds is still REJECTED alone).
        """
        instrument = check_instrument(instrument, now)
        sizes = slice_quantities(request.quantity, instrument)
        check_request(replace(request, quantity=sizes[0]), instrument, quote.last_price if quote else None)
        first = self.place(replace(request, quantity=sizes[0]), instrument, quote, now, slice_of="")
        rest = [self.place(replace(request, quantity=size), instrument, quote, now, slice_of=first.order_id)
                for size in sizes[1:]]
        return {"order_id": first.order_id, "children": [{"order_id": o.order_id} for o in (first, *rest)]}

    def modify(self, order_id: str, variety: str, form: Mapping[str, str], quote: QuoteView | None,
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
        """Re-check every resting order against the market: triggers, fills, TTL and end-of-day expiry."""
        for order in list(self._orders.values()):
            if order.status not in RESTING:
                continue
            if _expired(order, now):
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
        self._outbox.append(postback_payload(order, self.account, status))

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

    def _after_entry(self, order: Order, quote: QuoteView | None, now: float, *, publish_resting: bool = True) -> None:
        if publish_resting:
            self._publish(order)
        if quote is not None:
            self._try_fill(order, quote, now, aggressive=True)
        if order.request.validity == "IOC" and order.status == "OPEN":
            self._cancel(order, now)

    def _try_fill(self, order: Order, quote: QuoteView, now: float, *, aggressive: bool) -> None:
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

    # -- margin --------------------------------------------------------------------------------------

    def _net_quantity(self, order: Order) -> int:
        token = order.instrument.instrument_token
        return sum(
            fill.signed_quantity
            for fill in self._fills
            if fill.instrument.instrument_token == token and fill.product == order.request.product
        )

    def _order_use(self, order: Order, quote: QuoteView | None) -> MarginUse:
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

    def _margin_check(self, order: Order, quote: QuoteView | None) -> tuple[float, float]:
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


def _reference_price(request: OrderRequest, quote: QuoteView | None) -> float:
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
