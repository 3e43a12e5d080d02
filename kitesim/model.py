"""The vectorised quote model: per-instrument fair values, trades, depth and OI as pure functions of time.

Every field except the day's high/low is a pure function of (seed, instrument, time), so two markets
with the same seed agree at any simulated instant. Quotes move on a per-instrument half-second grid
(Kite sends at most ~2 ticks a second per instrument), phase-shifted so instruments do not tick in
lock-step.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta

import numpy as np

from kitesim.clock import IST
from kitesim.paths import (
    SESSION_CLOSE,
    SessionPath,
    previous_trading_day,
    session_close_epoch,
    trading_days_between,
)
from kitesim.pricing import (
    SECONDS_PER_YEAR,
    atm_vol,
    black76,
    derive64,
    forward_price,
    mix64,
    round_to_tick,
    smile_vol,
    uniform01,
)
from kitesim.universe import NIFTY_REFERENCE_LEVEL, UNDERLYINGS, SimInstrument, next_trading_day
from kitesim.wire import DEPTH_LEVELS, TickColumns

KIND_INDEX, KIND_FUT, KIND_CE, KIND_PE = 0, 1, 2, 3
KIND_CODES = {"EQ": KIND_INDEX, "FUT": KIND_FUT, "CE": KIND_CE, "PE": KIND_PE}
SLOT_SECONDS = 0.5
INDEX_DECIMALS = 2
FUTURES_BASIS = 0.0003
SALT_PHASE, SALT_RATE, SALT_OFFSET, SALT_BOOK, SALT_OI, SALT_VOLUME, SALT_TOTAL = range(1, 8)
SALT_OI_GROWTH, SALT_OI_SESSION = 8, 9
SALT_DEPTH = 100
LISTING_DAYS = 120  # a contract trades from about 4 months before its expiry
# Open interest gathers around the underlying's reference level, with this standard deviation of
# ln(strike / reference): fixed, so a contract's OI does not jump when the spot has moved overnight.
OI_MONEYNESS_WIDTH = 0.03
OI_WOBBLE_SESSIONS = 2.5  # a session's OI is its trend's give or take this many sessions' growth


@dataclass(slots=True)
class Contracts:
    """Static per-row facts of the instruments being priced."""

    tokens: np.ndarray
    und: np.ndarray
    kind: np.ndarray
    strike: np.ndarray
    expiry_epoch: np.ndarray
    tick: np.ndarray
    lot: np.ndarray

    @classmethod
    def from_instruments(cls, instruments: Sequence[SimInstrument]) -> "Contracts":
        names = list(UNDERLYINGS)
        expiry = [
            datetime.combine(i.expiry, SESSION_CLOSE, tzinfo=IST).timestamp() if i.expiry else np.inf
            for i in instruments
        ]
        return cls(
            tokens=np.array([i.instrument_token for i in instruments], dtype=np.uint64),
            und=np.array([names.index(i.underlying) for i in instruments], dtype=np.intp),
            kind=np.array([KIND_CODES[i.instrument_type] for i in instruments], dtype=np.int8),
            strike=np.array([i.strike for i in instruments], dtype=float),
            expiry_epoch=np.array(expiry, dtype=float),
            tick=np.array([i.tick_size or 0.05 for i in instruments], dtype=float),
            lot=np.array([i.lot_size for i in instruments], dtype=float),
        )

    def take(self, rows: np.ndarray) -> "Contracts":
        return Contracts(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @property
    def is_option(self) -> np.ndarray:
        return self.kind >= KIND_CE

    @property
    def is_index(self) -> np.ndarray:
        return self.kind == KIND_INDEX


def spot_at(c: Contracts, paths: Sequence[SessionPath], epochs: np.ndarray) -> np.ndarray:
    out = np.empty(c.und.size)
    for code in np.unique(c.und):
        mask = c.und == code
        out[mask] = paths[int(code)].at(epochs[mask] if np.ndim(epochs) else epochs)
    return out


def fair_values(c: Contracts, spot: np.ndarray, epochs: np.ndarray | float, seed: int) -> np.ndarray:
    """Index level, futures at the forward plus a little basis, options by Black-76 on the smile."""
    years = (c.expiry_epoch - epochs) / SECONDS_PER_YEAR
    out = spot.astype(float).copy()
    fut, opt = c.kind == KIND_FUT, c.is_option
    if fut.any():
        when = np.broadcast_to(np.asarray(epochs, float), spot.shape)[fut]
        basis = FUTURES_BASIS * np.sin(when / 900.0 + uniform01(seed, c.tokens[fut]) * 6.3)
        out[fut] = forward_price(spot[fut], years[fut]) * (1.0 + basis)
    if opt.any():
        fwd = forward_price(spot[opt], years[opt])
        vol = smile_vol(c.strike[opt], fwd, years[opt])
        out[opt] = black76(fwd, c.strike[opt], years[opt], vol, c.kind[opt] == KIND_CE)
    return out


def traded_prices(c: Contracts, fair: np.ndarray) -> np.ndarray:
    """On the tick grid; options never below one tick; index levels to 2 decimals."""
    rounded = np.maximum(round_to_tick(fair, c.tick), np.where(c.is_option, c.tick, 0.0))
    return np.where(c.is_index, np.round(fair, INDEX_DECIMALS), rounded)


@dataclass(slots=True)
class Dynamics:
    """Per-row processes of one session: trades, book refreshes and open interest."""

    open_epoch: float
    phase: np.ndarray
    trade_rate: np.ndarray
    trade_offset: np.ndarray
    book_rate: np.ndarray
    book_offset: np.ndarray
    oi_open: np.ndarray  # lots open at this session's open: the previous session's closing OI
    oi_change: np.ndarray  # lots added (or shed) by the close: the next session opens there
    oi_trades: np.ndarray  # the trades after the opening print that the day's OI change is spread over
    spread_ticks: np.ndarray
    token_key: np.ndarray  # mix64(seed, token): the per-instrument root of every noise draw

    def take(self, rows: np.ndarray) -> "Dynamics":
        picked = {f.name: getattr(self, f.name) for f in fields(self)}
        return Dynamics(**{k: v if k == "open_epoch" else v[rows] for k, v in picked.items()})

    def slot_times(self, now: float, close_epoch: float) -> np.ndarray:
        since = min(max(now, self.open_epoch), close_epoch) - self.open_epoch
        slots = np.floor((since + self.phase) / SLOT_SECONDS) * SLOT_SECONDS - self.phase
        return self.open_epoch + np.maximum(slots, 0.0)

    def trades(self, epochs: np.ndarray) -> np.ndarray:
        return np.floor(self.trade_rate * (epochs - self.open_epoch) + self.trade_offset)

    def last_trade_epoch(self, trades: np.ndarray) -> np.ndarray:
        rate = np.where(self.trade_rate > 0, self.trade_rate, 1.0)
        return self.open_epoch + np.maximum((trades - self.trade_offset) / rate, 0.0)

    def open_interest(self, trades: np.ndarray) -> np.ndarray:
        """Lots open after the session's first ``trades`` trades: OI moves only when the contract trades,
        by its share of the day's change, and the last trade the ticker publishes brings it to the next
        session's opening OI (so a session opens where the previous one closed)."""
        done = np.clip(trades - 1.0, 0.0, self.oi_trades)  # the opening print at 09:15:00 changes nothing
        return self.oi_open + np.floor(self.oi_change * done / self.oi_trades)


def liquidity(c: Contracts, spot: np.ndarray, epoch: float) -> np.ndarray:
    """1 at the money and for futures, falling with standardised distance from the forward."""
    years = np.maximum((c.expiry_epoch - epoch) / SECONDS_PER_YEAR, 1e-6)
    fwd = forward_price(spot, np.where(np.isfinite(years), years, 0.0))
    z = np.abs(np.log(np.where(c.strike > 0, c.strike, fwd) / fwd)) / (atm_vol(years) * np.sqrt(years))
    liq = np.where(c.is_option, np.exp(-0.5 * (z / 1.5) ** 2), 1.0)
    return np.where(c.is_index, 0.0, liq)


def sessions_listed(c: Contracts, day: date) -> np.ndarray:
    """The sessions each contract has traded before ``day`` since its listing (0 for the index)."""
    out = np.zeros(c.tokens.size, dtype=np.int64)
    for expiry_epoch in np.unique(c.expiry_epoch[np.isfinite(c.expiry_epoch)]):
        listed = datetime.fromtimestamp(expiry_epoch, IST).date() - timedelta(days=LISTING_DAYS)
        out[c.expiry_epoch == expiry_epoch] = max(trading_days_between(listed, day), 0)
    return out


def opening_oi(c: Contracts, seed: int, sessions: np.ndarray) -> np.ndarray:
    """Lots open at the start of each contract's ``sessions``-th session since listing: a seeded base,
    larger near the reference level and for futures, growing a seeded 2-6 % of it a session, give or
    take a seeded wobble, so some sessions shed OI. None for the index."""
    reference = NIFTY_REFERENCE_LEVEL * np.array([spec.nifty_ratio for spec in UNDERLYINGS.values()])[c.und]
    moneyness = np.log(np.where(c.strike > 0, c.strike, reference) / reference) / OI_MONEYNESS_WIDTH
    draw = np.where(c.is_option, np.exp(-0.5 * moneyness**2), 1.0)
    base = 200 + 20_000 * draw * uniform01(seed, c.tokens, SALT_OI)
    growth = base * (0.02 + 0.04 * uniform01(seed, c.tokens, SALT_OI_GROWTH))
    wobble = OI_WOBBLE_SESSIONS * uniform01(seed, c.tokens, SALT_OI_SESSION, sessions)
    return np.where(c.is_index, 0.0, np.floor(base + growth * (sessions + wobble)))


def session_dynamics(c: Contracts, paths: Sequence[SessionPath], seed: int) -> Dynamics:
    day, open_epoch = paths[0].day, float(paths[0].times[0])
    spot = spot_at(c, paths, np.full(c.und.size, open_epoch))
    liq = liquidity(c, spot, open_epoch)
    fair = fair_values(c, spot, open_epoch, seed)
    tradable = ~c.is_index
    trade_rate = np.where(
        tradable, 1 / 600 + 1.2 * liq * (0.5 + 0.5 * uniform01(seed, c.tokens, SALT_RATE)), 0
    )
    spread = np.clip(np.round(fair * (0.0003 + 0.01 * (1 - liq)) / c.tick), 1, 10)
    oi_open = opening_oi(c, seed, sessions_listed(c, day))
    next_open = opening_oi(c, seed, sessions_listed(c, next_trading_day(day + timedelta(days=1))))
    dynamics = Dynamics(
        open_epoch=open_epoch,
        phase=uniform01(seed, c.tokens, SALT_PHASE) * SLOT_SECONDS,
        trade_rate=trade_rate,
        trade_offset=1.0 + uniform01(seed, c.tokens, SALT_OFFSET),
        book_rate=np.where(tradable, np.minimum(0.15 + 3.0 * trade_rate, 1.9), 0.0),
        book_offset=uniform01(seed, c.tokens, SALT_BOOK),
        oi_open=oi_open,
        oi_change=next_open - oi_open,
        oi_trades=np.ones(c.tokens.size),
        spread_ticks=spread,
        token_key=mix64(seed, c.tokens),
    )
    close = session_close_epoch(day)
    last = dynamics.slot_times(session_last_instant(day), close)  # each row's last published slot
    dynamics.oi_trades = np.maximum(dynamics.trades(last) - 1.0, 1.0)
    return dynamics


def session_last_instant(day: date) -> float:
    """The last simulated instant of ``day``'s session, a microsecond (the clock's resolution: see
    kitesim.paths.session_day) before 15:30, which belongs to the next session."""
    return session_close_epoch(day) - 1e-6


def cumulative_volume(c: Contracts, d: Dynamics, trades: np.ndarray) -> np.ndarray:
    """Strictly increasing in the trade count: lot * (4n + w(n)) with w in 0..3."""
    key = derive64(d.token_key, SALT_VOLUME)
    wobble = (derive64(key, trades.astype(np.int64)) % np.uint64(4)).astype(float)
    return np.where(c.is_index | (trades <= 0), 0.0, c.lot * (4 * trades + wobble))


def fill_depth(
    cols: TickColumns,
    rows: np.ndarray | slice,
    c: Contracts,
    d: Dynamics,
    fair: np.ndarray,
    epochs: np.ndarray,
) -> None:
    """Five bid and five ask levels on the tick grid around ``fair``; quantities refresh per book version."""
    version = np.floor(d.book_rate * (epochs - d.open_epoch) + d.book_offset).astype(np.int64)
    bid_top = np.floor(fair / c.tick - d.spread_ticks / 2.0)
    steps = np.arange(DEPTH_LEVELS)
    tick = c.tick[:, None]
    bid_ticks = bid_top[:, None] - steps
    ask_ticks = np.maximum(bid_top + d.spread_ticks, 1.0)[:, None] + steps
    live = np.concatenate([bid_ticks >= 1, np.ones_like(ask_ticks, dtype=bool)], axis=1)
    live &= ~c.is_index[:, None]
    book_key = derive64(d.token_key, version)
    noise = derive64(book_key[:, None], np.arange(2 * DEPTH_LEVELS) + SALT_DEPTH)
    lots = (1.0 + np.floor((noise >> np.uint64(40)).astype(float) * (30.0 / 2**24))) * live
    share = (noise & np.uint64(0xFFFFF)).astype(float) / 2**20
    orders = np.where(live, 1.0 + np.floor(share * np.minimum(lots, 12.0)), 0.0)
    qty = lots * c.lot[:, None]
    prices = np.where(live, np.round(np.concatenate([bid_ticks, ask_ticks], axis=1) * tick, 2), 0.0)
    cols.bid_price[rows], cols.ask_price[rows] = prices[:, :DEPTH_LEVELS], prices[:, DEPTH_LEVELS:]
    cols.bid_qty[rows], cols.ask_qty[rows] = qty[:, :DEPTH_LEVELS], qty[:, DEPTH_LEVELS:]
    cols.bid_orders[rows], cols.ask_orders[rows] = orders[:, :DEPTH_LEVELS], orders[:, DEPTH_LEVELS:]
    total = 3.0 + (derive64(book_key, SALT_TOTAL) >> np.uint64(61)).astype(float)
    cols.buy_qty[rows] = qty[:, :DEPTH_LEVELS].sum(axis=1) * total
    cols.sell_qty[rows] = qty[:, DEPTH_LEVELS:].sum(axis=1) * total


def evaluate(
    cols: TickColumns,
    rows: np.ndarray | slice,
    slot: np.ndarray,
    c: Contracts,
    d: Dynamics,
    paths: Sequence[SessionPath],
    seed: int,
) -> None:
    """Write every pure-in-time field of ``cols[rows]``; ``c``/``d``/``slot`` are already those rows'."""
    fair_slot = fair_values(c, spot_at(c, paths, slot), slot, seed)
    trades = np.where(c.is_index, 0.0, d.trades(slot))
    traded_at = np.where(c.is_index, slot, d.last_trade_epoch(trades))
    fair_trade = fair_values(c, spot_at(c, paths, traded_at), traded_at, seed)
    cols.last[rows] = traded_prices(c, np.where(c.is_index, fair_slot, fair_trade))
    volume = cumulative_volume(c, d, trades)
    cols.volume[rows] = volume
    cols.ltq[rows] = volume - cumulative_volume(c, d, trades - 1)
    cols.ltt[rows] = np.floor(traded_at)
    cols.timestamp[rows] = np.floor(slot)
    oi, opened = c.lot * d.open_interest(trades), c.lot * d.oi_open  # the day's OI moves one way
    cols.oi[rows] = oi
    cols.oi_day_high[rows], cols.oi_day_low[rows] = np.maximum(oi, opened), np.minimum(oi, opened)
    fill_depth(cols, rows, c, d, fair_slot, slot)


def opening_prices(c: Contracts, paths: Sequence[SessionPath], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(today's open, previous close) per row; the close is priced at the previous session's 15:30."""
    open_epoch = float(paths[0].times[0])
    open_spot = spot_at(c, paths, np.full(c.und.size, open_epoch))
    day_open = traded_prices(c, fair_values(c, open_spot, open_epoch, seed))
    prev_spot = np.array([paths[code].prev_close for code in c.und])
    prev_epoch = session_close_epoch(previous_trading_day(paths[0].day))
    prev_close = traded_prices(c, fair_values(c, prev_spot, prev_epoch, seed))
    return day_open, prev_close
