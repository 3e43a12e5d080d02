"""The simulated instrument universe: index F&O contracts as Kite lists them on a given day.

Conventions (today's, see ref/kite-connect-v3.md §3): NIFTY has 4 weekly expiries (Tuesdays) and 3
monthly ones (the last Tuesday of the month); BANKNIFTY has 3 monthlies (last Tuesday); SENSEX trades
on BFO with 3 monthlies on the last Thursday, as in the August-2026 dump. Trading days are the
exchange calendar's sessions (``ticks.exchange_calendar``: no weekends, no NSE/BSE holidays); an expiry
that falls on a holiday moves to the previous session, as the exchanges move it.
"""

import calendar
import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from ticks.exchange_calendar import market_calendar

CSV_HEADER = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
SEGMENT_CODES = {"NSE": 1, "NFO": 2, "CDS": 3, "BSE": 4, "BFO": 5, "BCD": 6, "MCX": 7, "INDICES": 9}
WEEKLY_MONTH_CODES = "123456789OND"
TUESDAY, THURSDAY = 1, 3
NIFTY_REFERENCE_LEVEL = 24_800.0  # about the middle of the recorded 2025-09 NIFTY path
OPTION_TICK = 0.05
TOKEN_EPOCH = date(2000, 1, 1)
FUT_STRIKE_SLOT = 2047


@dataclass(frozen=True, slots=True)
class UnderlyingSpec:
    name: str
    index_name: str
    index_exchange: str
    index_exchange_token: int
    exchange: str
    strike_step: int
    lot_size: int
    freeze_quantity: int
    expiry_weekday: int
    weeklies: int
    nifty_ratio: float  # the market model derives this underlying from NIFTY by this ratio

    @property
    def code(self) -> int:
        return list(UNDERLYINGS).index(self.name)


UNDERLYINGS: dict[str, UnderlyingSpec] = {
    "NIFTY": UnderlyingSpec("NIFTY", "NIFTY 50", "NSE", 1001, "NFO", 50, 65, 1800, TUESDAY, 4, 1.0),
    "BANKNIFTY": UnderlyingSpec(
        "BANKNIFTY", "NIFTY BANK", "NSE", 1016, "NFO", 100, 30, 900, TUESDAY, 0, 2.19
    ),
    "SENSEX": UnderlyingSpec("SENSEX", "SENSEX", "BSE", 1, "BFO", 100, 20, 1000, THURSDAY, 0, 3.27),
}
MONTHLIES = 3


@dataclass(frozen=True, slots=True)
class SimInstrument:
    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    expiry: date | None
    strike: float
    tick_size: float
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str
    underlying: str
    freeze_quantity: int

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"

    @property
    def is_index(self) -> bool:
        return self.segment == "INDICES"

    def csv_row(self) -> list[str]:
        return [
            str(self.instrument_token),
            str(self.exchange_token),
            self.tradingsymbol,
            self.name,
            "0.0",
            self.expiry.isoformat() if self.expiry else "",
            repr(float(self.strike)),
            repr(float(self.tick_size)),
            str(self.lot_size),
            self.instrument_type,
            self.segment,
            self.exchange,
        ]


class Universe:
    """Every listed instrument of one session, looked up by token or ``EXCHANGE:SYMBOL`` key."""

    def __init__(self, instruments: Iterable[SimInstrument], session_date: date) -> None:
        self.session_date = session_date
        self._all = list(instruments)
        self._by_token: dict[int, SimInstrument] = {}
        self._by_key: dict[str, SimInstrument] = {}
        for inst in self._all:
            if inst.instrument_token in self._by_token or inst.key in self._by_key:
                raise ValueError(f"duplicate instrument {inst.key} / {inst.instrument_token}")
            self._by_token[inst.instrument_token] = inst
            self._by_key[inst.key] = inst

    def __len__(self) -> int:
        return len(self._all)

    def by_token(self, token: int) -> SimInstrument | None:
        return self._by_token.get(token)

    def by_key(self, key: str) -> SimInstrument | None:
        return self._by_key.get(key)

    def all(self) -> list[SimInstrument]:
        return list(self._all)

    def csv(self, exchange: str | None = None) -> str:
        """Kite's instruments dump, optionally only one exchange (``/instruments/NFO``)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(i.csv_row() for i in self._all if exchange is None or i.exchange == exchange)
        return out.getvalue()


# --- calendar -----------------------------------------------------------------------------------


def is_trading_day(day: date) -> bool:
    return market_calendar().is_session(day)


def next_trading_day(day: date) -> date:
    """``day`` itself when it is a trading day, else the next one (over weekends and holidays)."""
    return market_calendar().next_session(day)


def expiry_session(scheduled: date) -> date:
    """The day a contract scheduled to expire on ``scheduled`` expires: the previous session on a holiday."""
    sessions = market_calendar()
    return scheduled if sessions.is_session(scheduled) else sessions.previous_session(scheduled)


def last_weekday_of_month(year: int, month: int, weekday: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def monthly_expiries(spec: UnderlyingSpec, session_date: date, count: int = MONTHLIES) -> list[date]:
    found: list[date] = []
    year, month = session_date.year, session_date.month
    while len(found) < count:
        expiry = expiry_session(last_weekday_of_month(year, month, spec.expiry_weekday))
        if expiry >= session_date:
            found.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def weekly_expiries(spec: UnderlyingSpec, session_date: date) -> list[date]:
    """The next ``spec.weeklies`` expiries on the expiry weekday that is not the month's last one."""
    found: list[date] = []
    day = session_date + timedelta(days=(spec.expiry_weekday - session_date.weekday()) % 7)
    while len(found) < spec.weeklies:
        monthly = last_weekday_of_month(day.year, day.month, spec.expiry_weekday) == day
        if not monthly and (expiry := expiry_session(day)) >= session_date:
            found.append(expiry)
        day += timedelta(days=7)
    return found


# --- symbols and tokens ---------------------------------------------------------------------------


def strike_text(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else f"{strike:g}"


def option_symbol(underlying: str, expiry: date, strike: float, kind: str, monthly: bool) -> str:
    yy = f"{expiry.year % 100:02d}"
    if monthly:
        when = f"{yy}{calendar.month_abbr[expiry.month].upper()}"
    else:
        when = f"{yy}{WEEKLY_MONTH_CODES[expiry.month - 1]}{expiry.day:02d}"
    return f"{underlying}{when}{strike_text(strike)}{kind}"


def future_symbol(underlying: str, expiry: date) -> str:
    return f"{underlying}{expiry.year % 100:02d}{calendar.month_abbr[expiry.month].upper()}FUT"


def mint_token(exchange_token: int, segment: str) -> int:
    return exchange_token << 8 | SEGMENT_CODES[segment]


def derivative_exchange_token(spec: UnderlyingSpec, expiry: date, strike_slot: int, is_put: bool) -> int:
    """24 bits: underlying(2) | expiry day mod 1024 (10) | strike slot (11) | put (1); stable across days."""
    days = (expiry - TOKEN_EPOCH).days % 1024
    return ((spec.code << 10 | days) << 11 | strike_slot) << 1 | int(is_put)


# --- building -------------------------------------------------------------------------------------


def index_row(spec: UnderlyingSpec) -> SimInstrument:
    return SimInstrument(
        instrument_token=mint_token(spec.index_exchange_token, "INDICES"),
        exchange_token=spec.index_exchange_token,
        tradingsymbol=spec.index_name,
        name=spec.index_name,
        expiry=None,
        strike=0.0,
        tick_size=0.0,
        lot_size=0,
        instrument_type="EQ",
        segment="INDICES",
        exchange=spec.index_exchange,
        underlying=spec.name,
        freeze_quantity=0,
    )


def future_row(spec: UnderlyingSpec, expiry: date) -> SimInstrument:
    exchange_token = derivative_exchange_token(spec, expiry, FUT_STRIKE_SLOT, is_put=False)
    return SimInstrument(
        instrument_token=mint_token(exchange_token, spec.exchange),
        exchange_token=exchange_token,
        tradingsymbol=future_symbol(spec.name, expiry),
        name=spec.name,
        expiry=expiry,
        strike=0.0,
        tick_size=OPTION_TICK,
        lot_size=spec.lot_size,
        instrument_type="FUT",
        segment=f"{spec.exchange}-FUT",
        exchange=spec.exchange,
        underlying=spec.name,
        freeze_quantity=spec.freeze_quantity,
    )


def option_row(spec: UnderlyingSpec, expiry: date, strike: float, kind: str, monthly: bool) -> SimInstrument:
    slot = round(strike / spec.strike_step) % FUT_STRIKE_SLOT
    exchange_token = derivative_exchange_token(spec, expiry, slot, is_put=kind == "PE")
    return SimInstrument(
        instrument_token=mint_token(exchange_token, spec.exchange),
        exchange_token=exchange_token,
        tradingsymbol=option_symbol(spec.name, expiry, strike, kind, monthly),
        name=spec.name,
        expiry=expiry,
        strike=float(strike),
        tick_size=OPTION_TICK,
        lot_size=spec.lot_size,
        instrument_type=kind,
        segment=f"{spec.exchange}-OPT",
        exchange=spec.exchange,
        underlying=spec.name,
        freeze_quantity=spec.freeze_quantity,
    )


def strikes_around(level: float, step: int, each_side: int) -> list[float]:
    centre = round(level / step) * step
    return [float(centre + k * step) for k in range(-each_side, each_side + 1)]


def underlying_rows(
    spec: UnderlyingSpec, session_date: date, level: float, each_side: int
) -> list[SimInstrument]:
    monthly = monthly_expiries(spec, session_date)
    expiries = sorted([*weekly_expiries(spec, session_date), *monthly])
    rows = [index_row(spec), *(future_row(spec, e) for e in monthly)]
    for expiry in expiries:
        for strike in strikes_around(level, spec.strike_step, each_side):
            rows.extend(option_row(spec, expiry, strike, k, expiry in monthly) for k in ("CE", "PE"))
    return rows


def default_levels() -> dict[str, float]:
    return {name: NIFTY_REFERENCE_LEVEL * spec.nifty_ratio for name, spec in UNDERLYINGS.items()}


def universe_generate(
    session_date: date, *, levels: Mapping[str, float] | None = None, strikes_each_side: int = 40
) -> Universe:
    """Today's listing for ``session_date``, strikes centred on ``levels`` (default: the NIFTY path's)."""
    levels = {**default_levels(), **(levels or {})}
    rows: list[SimInstrument] = []
    for name, spec in UNDERLYINGS.items():
        rows.extend(underlying_rows(spec, session_date, levels[name], strikes_each_side))
    return Universe(rows, session_date)


def _row_from_csv(record: dict[str, str]) -> SimInstrument:
    spec = UNDERLYINGS[record["name"]]
    return SimInstrument(
        instrument_token=int(record["instrument_token"]),
        exchange_token=int(record["exchange_token"]),
        tradingsymbol=record["tradingsymbol"],
        name=record["name"],
        expiry=date.fromisoformat(record["expiry"]),
        strike=float(record["strike"]),
        tick_size=float(record["tick_size"]),
        lot_size=int(record["lot_size"]),
        instrument_type=record["instrument_type"],
        segment=record["segment"],
        exchange=record["exchange"],
        underlying=spec.name,
        freeze_quantity=spec.freeze_quantity,
    )


def universe_from_csv(path: Path, session_date: date) -> Universe:
    """A real Kite dump's NIFTY/BANKNIFTY/SENSEX contracts still alive on ``session_date``, plus indices.

    Stock F&O rows are dropped: the market model prices only the three index underlyings.
    """
    with Path(path).open(newline="") as handle:
        records = [r for r in csv.DictReader(handle) if r["name"] in UNDERLYINGS and r["expiry"]]
    rows = [index_row(spec) for spec in UNDERLYINGS.values()]
    rows.extend(_row_from_csv(r) for r in records if date.fromisoformat(r["expiry"]) >= session_date)
    return Universe(rows, session_date)
