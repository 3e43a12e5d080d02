"""What the order API remembers between requests, per web process, and when it forgets.

An order request checks the same rows every time: the API key's client, the account the client may
trade on, the instrument. Each is remembered for ORDER_LOOKUP_CACHE_S. A change saved through the
ORM (the admin, the services) to an API key, a user, a trading permission or a broker account bumps a
generation counter in Redis once it commits; every order request reads the counter first and ignores
what was remembered under an older one, so such a change counts at the next request in every web
process. A change that bypasses the ORM's signals (``QuerySet.update``, SQL) counts within
ORDER_LOOKUP_CACHE_S. With Redis unreachable a request remembers nothing.
"""

import logging
import time
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import redis
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from orders.redis_io import orders_redis

logger = logging.getLogger(__name__)

GENERATION_KEY = "orders:lookups:generation"
# The generation this request read; None: remember nothing (outside a request, or Redis unreachable).
_generation: ContextVar[int | None] = ContextVar("order_lookup_generation", default=None)

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class LookupCache(Generic[Key, Value]):
    """Values by key for at most ``ttl_s()`` seconds (read when an entry is stored; 0 stores nothing),
    and only while the generation they were stored under is the request's.

    At most ``max_entries`` are kept: a full cache starts over. Single dict operations are atomic
    under the GIL, so the web's request threads share one without a lock.
    """

    def __init__(
        self,
        ttl_s: Callable[[], float],
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        generation: Callable[[], int | None] = _generation.get,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._generation = generation
        self._entries: dict[Key, tuple[float, int, Value]] = {}

    def get(self, key: Key) -> Value | None:
        entry = self._entries.get(key)
        generation = self._generation()
        if entry is None or generation is None or entry[1] != generation or entry[0] <= self._clock():
            return None
        return entry[2]

    def put(self, key: Key, value: Value) -> None:
        ttl_s, generation = self._ttl_s(), self._generation()
        if ttl_s <= 0 or generation is None:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (self._clock() + ttl_s, generation, value)

    def clear(self) -> None:
        self._entries.clear()


def lookups_begin() -> None:
    """Read the generation for this request: the first thing an order request does."""
    try:
        value = orders_redis().get(GENERATION_KEY)
    except redis.RedisError as error:
        logger.warning("order lookups not remembered: Redis unreachable (%s)", error)
        _generation.set(None)
        return
    _generation.set(int(value or 0))


def lookups_changed(**_signal: Any) -> None:
    """Forget every process's lookups once the current transaction commits (a signal receiver)."""
    transaction.on_commit(lambda: orders_redis().incr(GENERATION_KEY), robust=True)


def forget_lookups_on_change() -> None:
    """Connect ``lookups_changed`` to the rows the lookups are made of (OrdersConfig.ready)."""
    from orders.models import TradingPermission
    from ticks.models import BrokerAccount, ClientApiKey

    for model in (ClientApiKey, get_user_model(), TradingPermission, BrokerAccount):
        post_save.connect(lookups_changed, sender=model, dispatch_uid=f"order-lookups-{model.__name__}")
        post_delete.connect(lookups_changed, sender=model, dispatch_uid=f"order-lookups-{model.__name__}")
