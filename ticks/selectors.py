"""Reads for the option chain. Each returns plain values or one pre-filtered queryset."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import redis
from django.conf import settings
from django.db.models import QuerySet

from ticks.feeds.latest import latest_ticks_read
from ticks.models import BrokerAccount, Instrument

OPTION_TYPES = (Instrument.Type.CE, Instrument.Type.PE)


@dataclass(frozen=True, slots=True)
class OptionPair:
    strike: Decimal
    call: Instrument | None
    put: Instrument | None


def _active_options(*, underlying: str) -> QuerySet[Instrument]:
    return Instrument.objects.filter(name=underlying, instrument_type__in=OPTION_TYPES, is_active=True)


def underlying_exists(*, underlying: str) -> bool:
    return _active_options(underlying=underlying).exists()


def chain_expiries(*, underlying: str, on_or_after: date | None = None) -> list[date]:
    """Option expiries of an underlying, nearest first (one query)."""
    options = _active_options(underlying=underlying)
    if on_or_after is not None:
        options = options.filter(expiry__gte=on_or_after)
    return list(options.order_by("expiry").values_list("expiry", flat=True).distinct())


def chain_strikes(*, underlying: str, expiry: date) -> list[Decimal]:
    """Distinct strikes of one expiry, ascending (one query)."""
    options = _active_options(underlying=underlying).filter(expiry=expiry)
    return list(options.order_by("strike").values_list("strike", flat=True).distinct())


def chain_pair(*, underlying: str, expiry: date, strike: Decimal) -> OptionPair:
    """The CE and PE at one strike (one query); a missing leg is None."""
    legs = {
        leg.instrument_type: leg
        for leg in _active_options(underlying=underlying).filter(expiry=expiry, strike=strike)
    }
    return OptionPair(strike=strike, call=legs.get(Instrument.Type.CE), put=legs.get(Instrument.Type.PE))


def chain_future(*, underlying: str, expiry: date) -> Instrument | None:
    """The same-expiry future, which prices the forward for Black-76 (one query)."""
    return Instrument.objects.filter(
        name=underlying, instrument_type=Instrument.Type.FUT, expiry=expiry, is_active=True
    ).first()


def instrument_list(
    *,
    exchange: str | None = None,
    name: str | None = None,
    expiry: date | None = None,
    instrument_type: str | None = None,
    strike_min: Decimal | None = None,
    strike_max: Decimal | None = None,
) -> QuerySet[Instrument]:
    """Active instruments filtered by whatever is given, in a stable order for pagination."""
    filters = {
        "exchange": exchange,
        "name": name,
        "expiry": expiry,
        "instrument_type": instrument_type,
        "strike__gte": strike_min,
        "strike__lte": strike_max,
    }
    given = {lookup: value for lookup, value in filters.items() if value is not None}
    return Instrument.objects.filter(is_active=True, **given).order_by("exchange", "tradingsymbol")


def broker_account_get(*, name: str) -> BrokerAccount | None:
    return BrokerAccount.objects.filter(name=name).first()


def latest_ticks(*, tokens: list[int]) -> npt.NDArray[np.void]:
    """The newest decoded tick of each token that has ticked (ticks.feeds.protocol.TICK_DTYPE rows)."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        return latest_ticks_read(client, tokens)
    finally:
        client.close()


def underlying_index(*, underlying: str) -> Instrument | None:
    """The underlying's index instrument (settings.UNDERLYING_INDEX), if listed and active."""
    key = settings.UNDERLYING_INDEX.get(underlying)
    if key is None:
        return None
    exchange, _, symbol = key.partition(":")
    return Instrument.objects.filter(exchange=exchange, tradingsymbol=symbol, is_active=True).first()
