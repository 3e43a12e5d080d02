"""What the fleet should stream: for each enabled WatchSpec, the strikes around ATM of its expiries.

The underlying's price comes from the latest-tick cache (its index token), else from Kite's LTP
endpoint; the ATM centre moves with hysteresis and a cooldown whose state lives in Redis, so
re-planning does not churn subscriptions when the price wobbles at a strike boundary.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import redis
from django.conf import settings
from django.utils import timezone

from ticks.feeds.latest import latest_ticks_read
from ticks.feeds.planner import DesiredGroup
from ticks.feeds.strikes import AtmState, atm_recentre, strike_step, strikes_around
from ticks.models import Instrument, WatchSpec
from ticks.selectors import OPTION_TYPES, chain_expiries, chain_strikes, underlying_index

logger = logging.getLogger(__name__)

COMPANION_MODE = "full"  # index and futures in full: exchange timestamps, depth for the forward


@dataclass(frozen=True, slots=True)
class Desired:
    groups: tuple[DesiredGroup, ...]
    modes: dict[int, str]
    problems: tuple[str, ...]


# Prices of instruments that have not ticked yet, in one call (Kite's quote limit is 1/s).
PriceSource = Callable[[list[Instrument]], dict[int, float]]


def feed_desired(*, redis_client: redis.Redis, fallback_prices: PriceSource) -> Desired:
    groups: list[DesiredGroup] = []
    modes: dict[int, str] = {}
    problems: list[str] = []
    specs = list(WatchSpec.objects.filter(enabled=True))
    indexes = {spec.underlying: underlying_index(underlying=spec.underlying) for spec in specs}
    prices = _prices(redis_client, [index for index in indexes.values() if index is not None], fallback_prices)
    for spec in specs:
        index = indexes[spec.underlying]
        if index is None:
            key = settings.UNDERLYING_INDEX.get(spec.underlying)
            problems.append(f"{spec.underlying}: no index instrument {key!r}")
            continue
        price = prices.get(index.instrument_token)
        if price is None:
            problems.append(f"{spec.underlying}: no price for {index} yet")
            continue
        for group in _spec_groups(spec, index, price, redis_client):
            groups.append(group)
            modes.update(dict.fromkeys(group.option_tokens, spec.mode))
            modes.update(dict.fromkeys(group.companion_tokens, COMPANION_MODE))
    return Desired(tuple(groups), modes, tuple(problems))


def _spec_groups(
    spec: WatchSpec, index: Instrument, price: float, redis_client: redis.Redis
) -> list[DesiredGroup]:
    today = timezone.localdate()
    expiries = _of_kind(chain_expiries(underlying=spec.underlying, on_or_after=today), spec.expiry_kind)
    near_future = _futures(spec.underlying, today)[:1]
    groups = []
    for expiry in expiries[: spec.expiry_count]:
        strikes = [float(strike) for strike in chain_strikes(underlying=spec.underlying, expiry=expiry)]
        if not strikes:
            continue
        centre = _centre(redis_client, f"{spec.underlying}:{expiry}", price, strike_step(strikes))
        window = strikes_around(strikes, centre, spec.strikes_around_atm)
        options = Instrument.objects.filter(
            name=spec.underlying,
            expiry=expiry,
            strike__in=window,
            instrument_type__in=OPTION_TYPES,
            is_active=True,
        ).values_list("instrument_token", flat=True)
        companions = {index.instrument_token, *near_future, *_futures(spec.underlying, expiry, exact=True)}
        groups.append(DesiredGroup(f"{spec.underlying}:{expiry}", frozenset(options), frozenset(companions)))
    return groups


def _of_kind(expiries: list[date], kind: str) -> list[date]:
    """Monthly = the last listed expiry of its calendar month; weekly = every other one."""
    last_of_month = {(e.year, e.month): e for e in expiries}
    monthly = set(last_of_month.values())
    if kind == WatchSpec.ExpiryKind.MONTHLY:
        return [e for e in expiries if e in monthly]
    if kind == WatchSpec.ExpiryKind.WEEKLY:
        return [e for e in expiries if e not in monthly]
    return expiries


def _futures(underlying: str, expiry: date, *, exact: bool = False) -> list[int]:
    futures = Instrument.objects.filter(name=underlying, instrument_type=Instrument.Type.FUT, is_active=True)
    futures = futures.filter(expiry=expiry) if exact else futures.filter(expiry__gte=expiry)
    return list(futures.order_by("expiry").values_list("instrument_token", flat=True))


def _prices(redis_client: redis.Redis, indexes: list[Instrument], fallback: PriceSource) -> dict[int, float]:
    rows = latest_ticks_read(redis_client, [index.instrument_token for index in indexes])
    prices = {int(row["instrument_token"]): float(row["last_price"]) for row in rows if row["last_price"] > 0}
    missing = [index for index in indexes if index.instrument_token not in prices]
    return prices | (fallback(missing) if missing else {})


def _centre(redis_client: redis.Redis, key: str, price: float, step: float) -> float:
    stored = redis_client.get(f"feeds:atm:{key}")
    previous = AtmState(**json.loads(stored)) if stored else None
    state = atm_recentre(price, step, previous, time.time())
    if state != previous:
        redis_client.set(f"feeds:atm:{key}", json.dumps({"centre": state.centre, "moved_at": state.moved_at}))
    return state.centre
