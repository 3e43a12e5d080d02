"""Our order status machine, and how Kite's order statuses map onto it (pure: no Django, no clock).

    PENDING ──claim──► SUBMITTING ──Kite answered──► PLACED ──► OPEN ──► COMPLETE / CANCELLED / REJECTED
       ▲                   │  │                          └──────────────► COMPLETE / CANCELLED / REJECTED
       └──release (wait)───┘  └──Kite refused / token refused / deadline──► REJECTED / FAILED

PENDING means "nothing is in flight": either Kite never saw the order, or an earlier attempt's outcome
is unknown and the next attempt must look the tag up before placing (``placement_attempts > 0``).
SUBMITTING means a worker holds the order's lease and may be talking to Kite right now.
A Kite update (response, WebSocket message, reconcile poll) may adopt an order from PENDING or
SUBMITTING directly: the tag proves Kite has it.

Kite's updates arrive out of order (WebSocket, the place response and reconcile polls race); an update
is applied only when it moves the order forward (:func:`is_newer`), so nothing ever goes backwards.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    SUBMITTING = "SUBMITTING"
    PLACED = "PLACED"
    OPEN = "OPEN"
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


FINAL = frozenset({OrderStatus.COMPLETE, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.FAILED})
AT_KITE = frozenset({OrderStatus.PLACED, OrderStatus.OPEN})
NOT_YET_AT_KITE = frozenset({OrderStatus.PENDING, OrderStatus.SUBMITTING})
_KITE_OUTCOMES = frozenset(
    {OrderStatus.PLACED, OrderStatus.OPEN, OrderStatus.COMPLETE, OrderStatus.CANCELLED, OrderStatus.REJECTED}
)

_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: _KITE_OUTCOMES | {OrderStatus.SUBMITTING, OrderStatus.FAILED},
    OrderStatus.SUBMITTING: _KITE_OUTCOMES | {OrderStatus.PENDING, OrderStatus.FAILED},
    OrderStatus.PLACED: _KITE_OUTCOMES - {OrderStatus.PLACED},
    # OPEN -> OPEN: a modification or a partial fill, applied only when it is newer (see is_newer)
    OrderStatus.OPEN: _KITE_OUTCOMES - {OrderStatus.PLACED},
    OrderStatus.COMPLETE: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    # FAILED is only ever set when we are sure Kite never took the order; should Kite show it after
    # all, Kite's word wins and the order is adopted (and an error is logged).
    OrderStatus.FAILED: _KITE_OUTCOMES,
}

_RANK: dict[OrderStatus, int] = {
    OrderStatus.PENDING: 0,
    OrderStatus.SUBMITTING: 1,
    OrderStatus.PLACED: 2,
    OrderStatus.FAILED: 1,
    OrderStatus.OPEN: 3,
    OrderStatus.COMPLETE: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
}

# Kite's statuses (ref/kite-connect-v3.md §2.5, §2.10). "UPDATE" is the postback for a modification or
# a partial fill. Anything unrecognised still proves Kite holds the order, so it counts as PLACED.
_KITE_STATUS: dict[str, OrderStatus] = {
    "PUT ORDER REQ RECEIVED": OrderStatus.PLACED,
    "VALIDATION PENDING": OrderStatus.PLACED,
    "OPEN PENDING": OrderStatus.PLACED,
    "AMO REQ RECEIVED": OrderStatus.OPEN,
    "OPEN": OrderStatus.OPEN,
    "TRIGGER PENDING": OrderStatus.OPEN,
    "MODIFY VALIDATION PENDING": OrderStatus.OPEN,
    "MODIFY PENDING": OrderStatus.OPEN,
    "MODIFIED": OrderStatus.OPEN,
    "CANCEL PENDING": OrderStatus.OPEN,
    "UPDATE": OrderStatus.OPEN,
    "COMPLETE": OrderStatus.COMPLETE,
    "CANCELLED": OrderStatus.CANCELLED,
    "CANCELLED AMO": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}

_NEVER = datetime.min.replace(tzinfo=UTC)


class IllegalTransition(ValueError):
    def __init__(self, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"an order cannot go from {current} to {target}")
        self.current = current
        self.target = target


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return target in _TRANSITIONS[current]


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    if not can_transition(current, target):
        raise IllegalTransition(current, target)


def status_for_kite(kite_status: str) -> OrderStatus:
    return _KITE_STATUS.get(kite_status.strip().upper(), OrderStatus.PLACED)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far an order has got, as far as Kite's updates go: compared to refuse going backwards."""

    status: OrderStatus
    filled_quantity: int = 0
    updated_at: datetime | None = None  # Kite's exchange_update / order timestamp of the update

    def key(self) -> tuple[int, int, datetime]:
        return (_RANK[self.status], self.filled_quantity, self.updated_at or _NEVER)


def is_newer(current: Progress, update: Progress) -> bool:
    """Apply a Kite update only when it is a legal step and strictly later than what we hold.

    Kite's timestamps have one-second resolution, so two updates in the same second with the same
    status and fill are treated as the same update (the first one applied wins).
    """
    return can_transition(current.status, update.status) and update.key() > current.key()
