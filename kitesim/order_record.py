"""One order as Kite shows it: the record, its ids, its order-book and postback shapes."""

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kitesim.order_rules import OrderRequest
from kitesim.timefmt import ist_date, ist_timestamp

if TYPE_CHECKING:
    from kitesim.accounts import SimAccount
    from kitesim.universe import SimInstrument

RESTING = frozenset({"OPEN", "TRIGGER PENDING"})
FINAL = frozenset({"COMPLETE", "CANCELLED", "REJECTED"})


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
    system_tags: tuple[str, ...] = ()  # Kite's own tags, e.g. ("autoslice", "autoslice:<parent id>")
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
        tags = ([req.tag] if req.tag else []) + list(self.system_tags)
        if tags:
            payload["tags"] = tags
        return payload


def _optional_timestamp(epoch: float | None) -> str | None:
    return None if epoch is None else ist_timestamp(epoch)


def postback_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    """Kite's postback checksum: sha256(order_id + order_timestamp + api_secret)."""
    return hashlib.sha256(f"{order_id}{order_timestamp}{api_secret}".encode()).hexdigest()


def app_id_of(api_key: str) -> int:
    return int(hashlib.sha256(api_key.encode()).hexdigest()[:6], 16) % 100_000


def postback_payload(order: Order, account: "SimAccount", status: str | None = None) -> dict[str, Any]:
    """The order-update / postback payload: the order plus user_id, unfilled_quantity, app_id, checksum."""
    payload = order.as_dict()
    if status is not None:
        payload["status"] = status
    payload["user_id"] = account.user_id
    payload["unfilled_quantity"] = order.pending_quantity
    payload["app_id"] = app_id_of(account.api_key)
    payload["checksum"] = postback_checksum(order.order_id, payload["order_timestamp"], account.api_secret)
    return payload
