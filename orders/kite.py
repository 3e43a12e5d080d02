"""The orders side of Kite as plain functions: what a client error means, an order's wire parameters,
and Kite's order objects (order-book rows, WebSocket updates) read into typed facts."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kiteconnect import exceptions as kite_errors
from requests.exceptions import RequestException

from orders.states import OrderStatus, Progress, status_for_kite
from ticks.market_time import IST

if TYPE_CHECKING:
    from orders.models import Order

# Everything a kiteconnect call raises for a reason outside our code: Kite's error envelopes and
# transport failures (timeouts, resets, refused connections).
KITE_CALL_ERRORS: tuple[type[Exception], ...] = (kite_errors.KiteException, RequestException)
KITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class KiteOutcome(StrEnum):
    REJECTED = "rejected"  # Kite refused the request itself (4xx): final, never retried
    TOKEN = "token"  # noqa: S105 - an outcome, not a secret: the access token was refused before anything was done
    THROTTLED = "throttled"  # 429: nothing was done; wait and try again
    UNKNOWN = "unknown"  # timeout, reset, 5xx: Kite may or may not have acted


def classify(error: Exception) -> KiteOutcome:
    if isinstance(error, kite_errors.TokenException):
        return KiteOutcome.TOKEN
    if isinstance(error, kite_errors.KiteException):
        if error.code == 429:
            return KiteOutcome.THROTTLED
        if error.code >= 500:
            return KiteOutcome.UNKNOWN
        return KiteOutcome.REJECTED
    return KiteOutcome.UNKNOWN


def describe(error: Exception) -> str:
    """One line for status messages and logs (kiteconnect's messages carry no secrets)."""
    return f"{type(error).__name__}: {error}"[:500]


def wire_decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


def place_params(order: "Order") -> dict[str, Any]:
    """``KiteConnect.place_order`` keyword arguments; the tag is ours and unique per order."""
    params: dict[str, Any] = {
        "variety": order.variety,
        "exchange": order.exchange,
        "tradingsymbol": order.tradingsymbol,
        "transaction_type": order.transaction_type,
        "quantity": order.quantity,
        "product": order.product,
        "order_type": order.order_type,
        "validity": order.validity,
        "tag": order.kite_tag,
    }
    optional = {
        "price": order.price,
        "trigger_price": order.trigger_price,
        "validity_ttl": order.validity_ttl,
        "iceberg_legs": order.iceberg_legs,
        "iceberg_quantity": order.iceberg_quantity,
    }
    for name, value in optional.items():
        if value is not None:
            params[name] = wire_decimal(value) if isinstance(value, Decimal) else value
    return params


class MalformedKiteOrder(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class KiteOrderFacts:
    order_id: str
    tags: tuple[str, ...]
    kite_status: str
    status_message: str
    filled_quantity: int
    pending_quantity: int
    average_price: Decimal
    quantity: int | None
    price: Decimal | None
    trigger_price: Decimal | None
    order_type: str | None
    updated_at: datetime | None

    @property
    def status(self) -> OrderStatus:
        return status_for_kite(self.kite_status)

    @property
    def progress(self) -> Progress:
        return Progress(self.status, self.filled_quantity, self.updated_at)


def facts_from_payload(payload: Mapping[str, Any]) -> KiteOrderFacts:
    """An order object from ``kite.orders()`` or a ``{"type": "order"}`` message's ``data``."""
    order_id, status = payload.get("order_id"), payload.get("status")
    if not order_id or not isinstance(status, str) or not status:
        raise MalformedKiteOrder(f"an order update needs order_id and status, got {sorted(payload)}")
    tags = payload.get("tags") or []
    tag = payload.get("tag")
    return KiteOrderFacts(
        order_id=str(order_id),
        tags=tuple(str(t) for t in ([tag] if tag else []) + list(tags)),
        kite_status=status.strip().upper(),
        status_message=str(payload.get("status_message") or "")[:1000],
        filled_quantity=_count(payload.get("filled_quantity")),
        pending_quantity=_count(payload.get("pending_quantity")),
        average_price=_price(payload.get("average_price")) or Decimal(0),
        quantity=_count(payload.get("quantity")) or None,
        price=_price(payload.get("price")),
        trigger_price=_price(payload.get("trigger_price")),
        order_type=payload.get("order_type") or None,
        updated_at=_first_time(
            payload, ("exchange_update_timestamp", "exchange_timestamp", "order_timestamp")
        ),
    )


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedKiteOrder(f"not a quantity: {value!r}")
    try:
        count = int(value)
    except ValueError:
        raise MalformedKiteOrder(f"not a quantity: {value!r}") from None
    if count < 0:
        raise MalformedKiteOrder(f"negative quantity: {value!r}")
    return count


def _price(value: Any) -> Decimal | None:
    """Kite writes 0 for "no price" (a MARKET order's price, no fills yet)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise MalformedKiteOrder(f"not a price: {value!r}") from None
    if not price.is_finite() or price < 0:
        raise MalformedKiteOrder(f"not a price: {value!r}")
    return price or None


def _first_time(payload: Mapping[str, Any], names: tuple[str, ...]) -> datetime | None:
    for name in names:
        moment = kite_time(payload.get(name))
        if moment is not None:
            return moment
    return None


def kite_time(value: Any) -> datetime | None:
    """Kite's ``yyyy-mm-dd hh:mm:ss`` IST strings; kiteconnect already turns some into naive datetimes."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=IST)
    if isinstance(value, str) and len(value) == 19:
        try:
            return datetime.strptime(value, KITE_TIME_FORMAT).replace(tzinfo=IST)
        except ValueError:
            return None
    return None
