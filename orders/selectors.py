"""Reads for orders: each returns one pre-filtered queryset or plain values."""

import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from orders.guard import kite_call
from orders.lookup_cache import LookupCache
from orders.models import Order, OrderEvent
from orders.redis_io import orders_redis
from orders.states import AT_KITE, NOT_YET_AT_KITE
from ticks.models import BrokerAccount, Instrument

ClientUser = AbstractBaseUser | AnonymousUser

# Loading a BrokerAccount decrypts these; reads that only show the account's name skip them.
ACCOUNT_SECRETS = ("account__api_key", "account__api_secret", "account__access_token")
# Orders whose Kite state may still change, or whose fate at Kite is not yet known.
LIVE_AT_KITE = Q(status__in=AT_KITE) | Q(status__in=NOT_YET_AT_KITE, placement_attempts__gt=0)
# (exchange, tradingsymbol) -> the instrument, for order validation (README "Orders": ORDER_LOOKUP_CACHE_S).
INSTRUMENTS: LookupCache[tuple[str, str], Instrument] = LookupCache(lambda: settings.ORDER_LOOKUP_CACHE_S)


def permitted_account(*, client: ClientUser, name: str, with_secrets: bool = False) -> BrokerAccount | None:
    """The broker account ``name`` when ``client`` may trade on it (one query); its Kite credentials
    are loaded (decrypted) only when the caller is about to call Kite."""
    accounts = BrokerAccount.objects.filter(name=name, trading_permissions__user_id=client.pk)
    if not with_secrets:
        accounts = accounts.only("id", "name", "enabled", "health")
    return accounts.first()


def instrument_for_order(*, exchange: str, tradingsymbol: str) -> Instrument | None:
    """The listed instrument, as read at most ORDER_LOOKUP_CACHE_S ago (the instruments change once a
    day); an unknown one is looked up every time, so a newly listed contract counts at once."""
    key = (exchange, tradingsymbol)
    instrument = INSTRUMENTS.get(key)
    if instrument is None:
        instrument = Instrument.objects.filter(exchange=exchange, tradingsymbol=tradingsymbol).first()
        if instrument is not None:
            INSTRUMENTS.put(key, instrument)
    return instrument


def order_list(
    *,
    client: ClientUser,
    account: str | None = None,
    statuses: list[str] | None = None,
    exchange: str | None = None,
    tradingsymbol: str | None = None,
    tag: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Order]:
    """The client's own orders, newest first, with the account joined (no N+1)."""
    filters = {
        "account__name": account,
        "status__in": statuses,
        "exchange": exchange,
        "tradingsymbol": tradingsymbol,
        "tag": tag,
        "created_at__gte": created_after,
        "created_at__lt": created_before,
    }
    given = {name: value for name, value in filters.items() if value is not None}
    orders = Order.objects.filter(client_id=client.pk, **given)
    return orders.select_related("account").defer(*ACCOUNT_SECRETS).order_by("-id")


def order_get(*, client: ClientUser, order_id: int) -> Order | None:
    """One of the client's orders with its history and slice ids (three queries)."""
    return (
        Order.objects.filter(client_id=client.pk, pk=order_id)
        .select_related("account")
        .defer(*ACCOUNT_SECRETS)
        .prefetch_related(
            Prefetch("events", queryset=OrderEvent.objects.order_by("id")),
            Prefetch("slices", queryset=Order.objects.only("id", "parent_id").order_by("id")),
        )
        .first()
    )


def positions_for(*, account: BrokerAccount) -> dict[str, Any]:
    """Kite's positions for the account, cached in Redis for ORDER_POSITIONS_CACHE_S."""
    client = orders_redis()
    key = f"kite:positions:{account.pk}"
    cached = client.get(key)
    if cached is not None:
        return {**json.loads(cached), "cached": True}
    positions = kite_call(account, lambda kite: kite.positions())
    payload = {
        "account": account.name,
        "fetched_at": timezone.now().isoformat(),
        "net": positions.get("net", []),
        "day": positions.get("day", []),
    }
    client.set(key, json.dumps(payload, default=str), px=int(settings.ORDER_POSITIONS_CACHE_S * 1000))
    return {**payload, "cached": False}
