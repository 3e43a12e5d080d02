"""Everything one kitesim server holds, shared by the ticker and the REST side."""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kitesim.accounts import AccountBook
from kitesim.clock import SimClock
from kitesim.faults import FaultPlan

if TYPE_CHECKING:
    from kitesim.market import Market


class OrderUpdateBus:
    """Order postback payloads fanned out to the WebSocket connections of one api_key."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def subscribe(self, api_key: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[api_key].add(queue)
        return queue

    def unsubscribe(self, api_key: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues[api_key].discard(queue)

    def publish(self, api_key: str, payload: dict[str, Any]) -> None:
        for queue in self._queues[api_key]:
            queue.put_nowait(payload)


@dataclass
class SimState:
    clock: SimClock
    accounts: AccountBook
    market: "Market"
    faults: FaultPlan = field(default_factory=FaultPlan)
    order_updates: OrderUpdateBus = field(default_factory=OrderUpdateBus)
    close_linger_s: float = 0.0  # simulated seconds the clock runs on after a session's close
