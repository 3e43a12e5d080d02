"""The listed contracts a plan is built from, read once per instruments load and kept per process.

A fleet plan walks ~650 chains (218 underlyings, 3 expiries each) on every re-plan, and a tick-driven
re-plan has well under a second: one query per chain cost 2,150 queries and 1.6 s on SQLite. The
instruments table changes once a day (the 08:30 refresh), so the listing is read in one query and
reused until a cheap version query (row count, newest load) says the table changed.
"""

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db.models import Count, Max

from ticks.market_time import expiry_close
from ticks.models import Instrument
from ticks.selectors import OPTION_TYPES


@dataclass(frozen=True, slots=True)
class Chain:
    """One underlying's listed options and futures."""

    options: dict[date, dict[float, tuple[int, ...]]]  # expiry -> strike -> CE/PE tokens
    futures: tuple[tuple[int, date], ...]  # (token, expiry), nearest first

    def expiries(self, now: datetime) -> list[date]:
        """Option expiries still trading at ``now`` (an expiry's contracts stop at 15:30 IST), nearest first."""
        return [expiry for expiry in sorted(self.options) if expiry_close(expiry) > now]

    def live_futures(self, now: datetime) -> list[tuple[int, date]]:
        return [(token, expiry) for token, expiry in self.futures if expiry_close(expiry) > now]

    def strikes(self, expiry: date) -> list[float]:
        return sorted(self.options.get(expiry, {}))

    def tokens(self, expiry: date, strikes: list[float]) -> dict[int, float]:
        by_strike = self.options.get(expiry, {})
        return {token: strike for strike in strikes for token in by_strike.get(strike, ())}


@dataclass(frozen=True, slots=True)
class Listing:
    version: tuple[int, datetime | None]
    chains: dict[str, Chain]
    indexes: dict[str, int]  # underlying -> its index token (settings.UNDERLYING_INDEX, listed and active)

    def chain(self, underlying: str) -> Chain:
        return self.chains.get(underlying, Chain({}, ()))

    def price_source(self, underlying: str, now: datetime) -> tuple[int, str] | None:
        """(token, role): the index where settings.UNDERLYING_INDEX names one, else the nearest live
        future (stock F&O: the NFO dump lists no equities)."""
        if underlying in settings.UNDERLYING_INDEX:
            index = self.indexes.get(underlying)
            return None if index is None else (index, "index")
        futures = self.chain(underlying).live_futures(now)
        return (futures[0][0], "future") if futures else None


_lock = threading.Lock()
_cached: Listing | None = None


def listing_current() -> Listing:
    """The listing of the active instruments, re-read only when the table changed."""
    global _cached
    version = _version()
    with _lock:
        if _cached is None or _cached.version != version:
            _cached = _read(version)
        return _cached


def _version() -> tuple[int, datetime | None]:
    found = Instrument.objects.aggregate(rows=Count("id"), loaded=Max("loaded_at"))
    return (found["rows"], found["loaded"])


def _read(version: tuple[int, datetime | None]) -> Listing:
    rows = (
        Instrument.objects.filter(is_active=True, instrument_type__in=[*OPTION_TYPES, Instrument.Type.FUT])
        .exclude(expiry=None)
        .values_list("name", "expiry", "strike", "instrument_type", "instrument_token")
    )
    options: dict[str, dict[date, dict[float, list[int]]]] = defaultdict(lambda: defaultdict(dict))
    futures: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for name, expiry, strike, kind, token in rows:
        if kind == Instrument.Type.FUT:
            futures[name].append((expiry, token))
        else:
            options[name][expiry].setdefault(float(strike), []).append(token)
    chains = {
        name: Chain(
            {
                e: {s: tuple(sorted(t)) for s, t in by_strike.items()}
                for e, by_strike in options.get(name, {}).items()
            },
            tuple((token, expiry) for expiry, token in sorted(futures.get(name, []))),
        )
        for name in options.keys() | futures.keys()
    }
    return Listing(version, chains, _indexes())


def _indexes() -> dict[str, int]:
    keys = {underlying: key.partition(":") for underlying, key in settings.UNDERLYING_INDEX.items()}
    symbols = {symbol for _, _, symbol in keys.values()}
    found = {
        (exchange, symbol): token
        for exchange, symbol, token in Instrument.objects.filter(
            is_active=True, tradingsymbol__in=symbols
        ).values_list("exchange", "tradingsymbol", "instrument_token")
    }
    return {
        underlying: found[(exchange, symbol)]
        for underlying, (exchange, _, symbol) in keys.items()
        if (exchange, symbol) in found
    }
