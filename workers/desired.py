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
from ticks.market_time import IST, expiry_close
from ticks.models import Instrument, WatchSpec
from ticks.selectors import (
    OPTION_TYPES,
    chain_expiries,
    chain_strikes,
    expiries_of_kind,
    underlying_index,
    watch_specs_by_priority,
)

COMPANION_MODE = "full"  # index and futures in full: exchange timestamps, depth for the forward


@dataclass(frozen=True, slots=True)
class TokenReason:
    """Why a token is in the plan: its group, and for an option its strike's place in the window."""

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
    specs = watch_specs_by_priority(WatchSpec.objects.filter(enabled=True))
    sources = {spec.underlying: _price_source(spec.underlying, now) for spec in specs}
    found = [source for source in sources.values() if source is not None]
    prices = _prices(redis_client, found, fallback_prices)
    for spec in specs:
        source = sources[spec.underlying]
        if source is None:
            collected.problems.append(f"{spec.underlying}: no index or live future to price it")
            continue
        price = prices.get(source.instrument_token)
        if price is None:
            collected.problems.append(f"{spec.underlying}: no price for {source} yet")
            continue
        _spec_groups(collected, spec, source, price, now, redis_client)
    return collected.desired()


def expiries_live(expiries: list[date], now: datetime) -> list[date]:
    """The expiries still trading at ``now``: an expiry day's contracts stop at 15:30 IST."""
    return [expiry for expiry in expiries if expiry_close(expiry) > now]


def _spec_groups(
    collected: _Collector,
    spec: WatchSpec,
    source: Instrument,
    price: float,
    now: datetime,
    redis_client: redis.Redis,
) -> None:
    day = now.astimezone(IST).date()
    expiries = expiries_live(chain_expiries(underlying=spec.underlying, on_or_after=day), now)
    futures = _live_futures(spec.underlying, now)
    for expiry in expiries_of_kind(expiries, spec.expiry_kind)[: spec.expiry_count]:
        strikes = [float(strike) for strike in chain_strikes(underlying=spec.underlying, expiry=expiry)]
        if len(strikes) < 2:
            continue
        key = f"{spec.underlying}:{expiry}"
        step = strike_step(strikes)
        state = _centre(redis_client, key, price, step, now.timestamp())
        collected.bands.setdefault(source.instrument_token, []).append(atm_band(state, step))
        options = _options(spec, expiry, strikes, state.centre)
        companions = {source.instrument_token: "index" if source.segment == "INDICES" else "future"}
        near = [token for token, future_expiry in futures[:1]]
        same = [token for token, future_expiry in futures if future_expiry == expiry]
        companions.update(dict.fromkeys([*near, *same], "future"))
        _collect(collected, spec, key, expiry, options, companions)


def _options(
    spec: WatchSpec, expiry: date, strikes: list[float], centre: float
) -> dict[int, tuple[float, int]]:
    """token -> (strike, offset from the centre) for the window: ATM ± (N + FEED_STRIKE_MARGIN).

    The margin keeps ATM ± N streamed while a re-centre is on its way (the price has passed half a
    strike gap before the band even triggers)."""
    window = strikes_around(strikes, centre, spec.strikes_around_atm + settings.FEED_STRIKE_MARGIN)
    middle = strikes_around(window, centre, 0)[0]
    offsets = {strike: index - window.index(middle) for index, strike in enumerate(window)}
    rows = Instrument.objects.filter(
        name=spec.underlying,
        expiry=expiry,
        strike__in=window,
        instrument_type__in=OPTION_TYPES,
        is_active=True,
    ).values_list("instrument_token", "strike")
    return {token: (float(strike), offsets[float(strike)]) for token, strike in rows}


def _collect(
    collected: _Collector,
    spec: WatchSpec,
    key: str,
    expiry: date,
    options: dict[int, tuple[float, int]],
    companions: dict[int, str],
) -> None:
    collected.groups.append(DesiredGroup(key, frozenset(options), frozenset(companions)))
    collected.modes.update(dict.fromkeys(options, spec.mode))
    collected.modes.update(dict.fromkeys(companions, COMPANION_MODE))
    for token, (strike, offset) in options.items():
        collected.reasons[token] = TokenReason(key, spec.underlying, expiry, strike, offset, "option")
    for token, role in companions.items():
        collected.reasons.setdefault(token, TokenReason(key, spec.underlying, None, None, None, role))


def _live_futures(underlying: str, now: datetime) -> list[tuple[int, date]]:
    """(token, expiry) of the underlying's futures still trading, nearest first."""
    futures = Instrument.objects.filter(
        name=underlying,
        instrument_type=Instrument.Type.FUT,
        is_active=True,
        expiry__gte=now.astimezone(IST).date(),
    )
    rows = futures.order_by("expiry").values_list("instrument_token", "expiry")
    return [(token, expiry) for token, expiry in rows if expiry_close(expiry) > now]


def _price_source(underlying: str, now: datetime) -> Instrument | None:
    """The index where settings.UNDERLYING_INDEX names one, else the nearest live future (stock F&O:
    the NFO dump lists no equities)."""
    index = underlying_index(underlying=underlying)
    if index is not None or underlying in settings.UNDERLYING_INDEX:
        return index
    futures = _live_futures(underlying, now)
    return Instrument.objects.filter(instrument_token=futures[0][0]).first() if futures else None


def _prices(redis_client: redis.Redis, sources: list[Instrument], fallback: PriceSource) -> dict[int, float]:
    rows = latest_ticks_read(redis_client, [source.instrument_token for source in sources])
    prices = {int(row["instrument_token"]): float(row["last_price"]) for row in rows if row["last_price"] > 0}
    missing = [source for source in sources if source.instrument_token not in prices]
    return prices | (fallback(missing) if missing else {})


def _centre(redis_client: redis.Redis, key: str, price: float, step: float, now: float) -> AtmState:
    stored = redis_client.get(f"feeds:atm:{key}")
    previous = AtmState(**json.loads(stored)) if stored else None
    state = atm_recentre(price, step, previous, now)
    if state != previous:
        redis_client.set(f"feeds:atm:{key}", json.dumps({"centre": state.centre, "moved_at": state.moved_at}))
    return state
