"""What the fleet should stream: for each enabled WatchSpec, the strikes around ATM of its live expiries.

All of it on the market clock (``now``, from the caller): nothing on a day without a session; an
expiry leaves the plan at 15:30 IST on its expiry day and the next one takes its place (the expiry
roll, following the instruments dump's dates). The underlying's price comes from the latest-tick
cache (its index token, or its nearest future where no index is configured, as for stock F&O), else
from Kite's LTP endpoint; the ATM centre moves with hysteresis and a cooldown whose state lives in
Redis. Each token carries why it is wanted (``TokenReason``), and each price token the band a feed
watches to ask for a re-plan the moment the price leaves it (``ticks.feeds.strikes.AtmBand``).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

import redis
from django.conf import settings

from ticks.exchange_calendar import TradingCalendar
from ticks.feeds.latest import latest_ticks_read
from ticks.feeds.planner import DesiredGroup
from ticks.feeds.strikes import (
    AtmBand,
    AtmState,
    atm_band,
    atm_band_merge,
    atm_recentre,
    strike_step,
    strikes_around,
)
from ticks.market_time import IST
from ticks.models import Instrument, WatchSpec
from ticks.selectors import expiries_of_kind, watch_specs_by_priority
from workers.listing import Chain, listing_current

COMPANION_MODE = "full"  # index and futures in full: exchange timestamps, depth for the forward


class TokenReason(NamedTuple):
    """Why a token is in the plan: its group, and for an option its strike's place in the window.
    A NamedTuple: a fleet plan makes 30,000 per re-plan, and a frozen dataclass costs far more."""

    group: str
    underlying: str
    expiry: date | None
    strike: float | None
    strike_offset: int | None  # listed strikes from the window's centre; negative below it
    role: str  # option | index | future


@dataclass(frozen=True, slots=True)
class Desired:
    groups: tuple[DesiredGroup, ...]
    modes: dict[int, str]
    problems: tuple[str, ...]
    reasons: dict[int, TokenReason] = field(default_factory=dict)
    bands: dict[int, AtmBand] = field(default_factory=dict)  # price token -> band to watch
    closed: str = ""  # why nothing is wanted today (a weekend or an exchange holiday)


# Prices of instruments that have not ticked yet, in one call (Kite's quote limit is 1/s).
PriceSource = Callable[[list[Instrument]], dict[int, float]]


@dataclass
class _Collector:
    groups: list[DesiredGroup] = field(default_factory=list)
    modes: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    reasons: dict[int, TokenReason] = field(default_factory=dict)
    bands: dict[int, list[AtmBand]] = field(default_factory=dict)

    def desired(self) -> Desired:
        bands = {token: atm_band_merge(found) for token, found in self.bands.items()}
        return Desired(tuple(self.groups), self.modes, tuple(self.problems), self.reasons, bands)


def feed_desired(
    *, redis_client: redis.Redis, fallback_prices: PriceSource, now: datetime, calendar: TradingCalendar
) -> Desired:
    day = now.astimezone(IST).date()
    if not calendar.is_session(day):
        return Desired((), {}, (), closed=f"{day}: no session (weekend or exchange holiday)")
    collected = _Collector()
    listing = listing_current()
    specs = watch_specs_by_priority(WatchSpec.objects.filter(enabled=True))
    sources = {spec.underlying: listing.price_source(spec.underlying, now) for spec in specs}
    prices = _prices(redis_client, {found[0] for found in sources.values() if found}, fallback_prices)
    windows = []
    for spec in specs:
        source = sources[spec.underlying]
        if source is None:
            collected.problems.append(f"{spec.underlying}: no index or live future to price it")
        elif source[0] not in prices:
            collected.problems.append(f"{spec.underlying}: no price for token {source[0]} yet")
        else:
            windows += _spec_windows(spec, listing.chain(spec.underlying), source, prices[source[0]], now)
    states = _centres(redis_client, windows, now.timestamp())
    for window, state in zip(windows, states, strict=True):
        _collect(collected, window, state)
    return collected.desired()


@dataclass(frozen=True, slots=True)
class _Window:
    """One expiry group of one spec, before its centre is known."""

    spec: WatchSpec
    chain: Chain
    expiry: date
    strikes: list[float]
    step: float
    source: tuple[int, str]  # the price token and its role
    price: float
    companions: dict[int, str]  # token -> role

    @property
    def key(self) -> str:
        return f"{self.spec.underlying}:{self.expiry}"


def _spec_windows(
    spec: WatchSpec, chain: Chain, source: tuple[int, str], price: float, now: datetime
) -> list[_Window]:
    futures = chain.live_futures(now)
    windows = []
    for expiry in expiries_of_kind(chain.expiries(now), spec.expiry_kind)[: spec.expiry_count]:
        strikes = chain.strikes(expiry)
        if len(strikes) < 2:
            continue
        companions = dict.fromkeys([token for token, _ in futures[:1]], "future")
        companions.update(dict.fromkeys((token for token, e in futures if e == expiry), "future"))
        companions[source[0]] = source[1]
        windows.append(_Window(spec, chain, expiry, strikes, strike_step(strikes), source, price, companions))
    return windows


def _collect(collected: _Collector, window: _Window, state: AtmState) -> None:
    """The window's options, ATM ± (N + FEED_STRIKE_MARGIN) around its centre, and its companions.

    The margin keeps ATM ± N streamed while a re-centre is on its way (the price has passed half a
    strike gap before the band even triggers)."""
    spec, key = window.spec, window.key
    collected.bands.setdefault(window.source[0], []).append(atm_band(state, window.step))
    strikes = strikes_around(
        window.strikes, state.centre, spec.strikes_around_atm + settings.FEED_STRIKE_MARGIN
    )
    middle = strikes.index(strikes_around(strikes, state.centre, 0)[0])
    offsets = {strike: index - middle for index, strike in enumerate(strikes)}
    options = window.chain.tokens(window.expiry, strikes)
    collected.groups.append(DesiredGroup(key, frozenset(options), frozenset(window.companions)))
    collected.modes.update(dict.fromkeys(options, spec.mode))
    collected.modes.update(dict.fromkeys(window.companions, COMPANION_MODE))
    for token, strike in options.items():
        collected.reasons[token] = TokenReason(
            key, spec.underlying, window.expiry, strike, offsets[strike], "option"
        )
    for token, role in window.companions.items():
        collected.reasons.setdefault(token, TokenReason(key, spec.underlying, None, None, None, role))


def _prices(redis_client: redis.Redis, tokens: set[int], fallback: PriceSource) -> dict[int, float]:
    rows = latest_ticks_read(redis_client, sorted(tokens))
    prices = {int(row["instrument_token"]): float(row["last_price"]) for row in rows if row["last_price"] > 0}
    missing = list(Instrument.objects.filter(instrument_token__in=tokens - prices.keys(), is_active=True))
    return prices | (fallback(missing) if missing else {})


def _centres(redis_client: redis.Redis, windows: list[_Window], now: float) -> list[AtmState]:
    """Each window's ATM state after seeing its price: one MGET, one MSET of those that moved."""
    if not windows:
        return []
    keys = [f"feeds:atm:{window.key}" for window in windows]
    stored = redis_client.mget(keys)
    states, moved = [], {}
    for key, raw, window in zip(keys, stored, windows, strict=True):
        previous = AtmState(**json.loads(raw)) if raw else None
        state = atm_recentre(window.price, window.step, previous, now)
        if state != previous:
            moved[key] = json.dumps({"centre": state.centre, "moved_at": state.moved_at})
        states.append(state)
    if moved:
        redis_client.mset(moved)
    return states
