"""A small NIFTY market for the tick-path tests: instruments, their true forward and smile, tick rows.

Two expiries: a weekly without a future and a monthly with one. Options are priced by Black-76 at the
true forward S e^{rT} on a smile, so a correct forward recovers the smile.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import numpy.typing as npt

from greeks import engine
from greeks.engine import IST
from greeks.tickpath import InstrumentRow
from ticks.feeds.protocol import TICK_DTYPE

RATE = 0.065
SPOT = 24_800.0
STEP = 50.0
ATM_VOL = 0.13
WEEKLY = date(2026, 12, 8)
MONTHLY = date(2026, 12, 29)
NOW = int(datetime(2026, 12, 1, 10, 0, tzinfo=IST).timestamp())
INDEX_TOKEN = 256265
FUTURE_TOKEN = 9001 << 8 | 2
STRIKES = SPOT + STEP * np.arange(-10, 11)


@dataclass(frozen=True)
class Option:
    token: int
    expiry: date
    strike: float
    is_call: bool

    @property
    def kind(self) -> str:
        return "CE" if self.is_call else "PE"


def option_token(expiry: date, strike: float, is_call: bool) -> int:
    exchange_token = (1 if expiry == WEEKLY else 2) << 20 | int(strike) << 1 | int(not is_call)
    return exchange_token << 8 | 2


def options(expiry: date, strikes: Iterable[float] = STRIKES) -> list[Option]:
    return [
        Option(option_token(expiry, float(k), is_call), expiry, float(k), is_call)
        for k in strikes
        for is_call in (True, False)
    ]


def instrument_rows() -> list[InstrumentRow]:
    rows = [InstrumentRow(INDEX_TOKEN, "NIFTY", None, 0.0, "IDX")]
    rows.append(InstrumentRow(FUTURE_TOKEN, "NIFTY", MONTHLY, 0.0, "FUT"))
    for expiry in (WEEKLY, MONTHLY):
        rows += [InstrumentRow(o.token, "NIFTY", o.expiry, o.strike, o.kind) for o in options(expiry)]
    return rows


def years(expiry: date, now: float = NOW) -> float:
    return engine.year_fraction(now, expiry)


def true_forward(expiry: date, now: float = NOW, spot: float = SPOT) -> float:
    return spot * float(np.exp(RATE * years(expiry, now)))


def smile(strike: npt.ArrayLike, forward: float, t: float) -> npt.NDArray[np.float64]:
    z = np.log(np.asarray(strike, dtype=float) / forward) / (ATM_VOL * np.sqrt(t))
    return ATM_VOL * (1.0 - 0.08 * z + 0.02 * z * z)


def option_prices(
    chosen: list[Option], now: float = NOW, spot: float = SPOT, tick: float | None = None
) -> npt.NDArray[np.float64]:
    """Black-76 prices on the smile at the true forward; rounded to ``tick`` (floored at one) if given."""
    out = np.empty(len(chosen))
    for expiry in {o.expiry for o in chosen}:
        lanes = [i for i, o in enumerate(chosen) if o.expiry == expiry]
        t, forward = years(expiry, now), true_forward(expiry, now, spot)
        strike = np.array([chosen[i].strike for i in lanes])
        is_call = np.array([chosen[i].is_call for i in lanes])
        out[lanes] = engine.price_at_vol(forward, strike, t, RATE, is_call, smile(strike, forward, t))
    if tick is not None:
        out = np.maximum(np.round(out / tick) * tick, tick)
    return out


def tick_rows(
    tokens: Iterable[int],
    last_price: npt.ArrayLike,
    *,
    exchange_timestamp: npt.ArrayLike = NOW,
    bid: npt.ArrayLike = 0.0,
    ask: npt.ArrayLike = 0.0,
    mode: str = "full",
) -> npt.NDArray[np.void]:
    """TICK_DTYPE rows as the decoder makes them; ``bid``/``ask`` fill the best level only."""
    tokens = list(tokens)
    rows = np.zeros(len(tokens), dtype=TICK_DTYPE)
    rows["instrument_token"] = tokens
    rows["last_price"] = last_price
    rows["exchange_timestamp"] = exchange_timestamp
    rows["bid_price"][:, 0] = bid
    rows["ask_price"][:, 0] = ask
    rows["mode"] = mode
    rows["tradable"] = True
    return rows


def chain_frame(
    expiry: date, *, now: float = NOW, spot: float = SPOT, with_index: bool = True, tick: float | None = None
) -> npt.NDArray[np.void]:
    """Every option of ``expiry`` at its model price, plus the index row."""
    chosen = options(expiry)
    rows = tick_rows(
        [o.token for o in chosen], option_prices(chosen, now, spot, tick), exchange_timestamp=now
    )
    if not with_index:
        return rows
    return np.concatenate([tick_rows([INDEX_TOKEN], [spot], exchange_timestamp=now), rows])
