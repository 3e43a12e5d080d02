"""The market: today's universe, its quote table stepped through simulated time, and candle history.

The quote maths lives in :mod:`kitesim.model` (pure, vectorised); this class holds the session state,
rolls to the next session when time crosses 15:30 IST, and answers the REST side's questions.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from kitesim.clock import IST
from kitesim.model import (
    LISTING_DAYS,
    SLOT_SECONDS,
    Contracts,
    Dynamics,
    cumulative_volume,
    evaluate,
    fair_values,
    opening_prices,
    session_dynamics,
    session_last_instant,
    spot_at,
    traded_prices,
)
from kitesim.paths import (
    NiftyGbm,
    NiftyPath,
    NiftyReplay,
    SessionPaths,
    session_close_epoch,
    session_day,
    session_open_epoch,
    sessions_for,
)
from kitesim.pricing import SECONDS_PER_YEAR, forward_price, round_to_tick
from kitesim.trend import NiftyTrend, TrendSpec, trend_chain_levels, trend_strikes_each_side
from kitesim.universe import UNDERLYINGS, Universe, is_trading_day, universe_from_csv, universe_generate
from kitesim.wire import TickColumns
from ticks.bars.intervals import INTERVAL_MINUTES

Candle = tuple[float, float, float, float, float, int, int]
UniverseFactory = Callable[[date, Mapping[str, float]], Universe]
BAR_KNOTS = np.array([0.0, 15.0, 35.0, 55.0])
MINUTES_PER_SESSION = 375
# Fields whose change makes a tick worth sending (the exchange timestamp alone does not).
CHANGE_FIELDS = (
    "last",
    "volume",
    "oi",
    "buy_qty",
    "sell_qty",
    "bid_price",
    "bid_qty",
    "bid_orders",
    "ask_price",
    "ask_qty",
    "ask_orders",
)


@dataclass(slots=True)
class DepthLevel:
    price: float
    quantity: int
    orders: int


@dataclass(slots=True)
class Quote:
    last_price: float
    last_traded_quantity: int
    average_traded_price: float
    volume: int
    buy_quantity: int
    sell_quantity: int
    open: float
    high: float
    low: float
    close: float
    last_trade_time: float
    oi: int
    oi_day_high: int
    oi_day_low: int
    timestamp: float
    bids: list[DepthLevel]
    asks: list[DepthLevel]


def _depth(prices: np.ndarray, quantities: np.ndarray, orders: np.ndarray) -> list[DepthLevel]:
    return [DepthLevel(float(p), int(q), int(o)) for p, q, o in zip(prices, quantities, orders, strict=True)]


def _changed(before: TickColumns, after: TickColumns) -> np.ndarray:
    changed = np.zeros(after.token.size, dtype=bool)
    for name in CHANGE_FIELDS:
        diff = getattr(before, name) != getattr(after, name)
        changed |= diff.any(axis=1) if diff.ndim == 2 else diff
    return changed


class Market:
    """Quotes for every instrument of the current session, advanced with :meth:`step`."""

    def __init__(
        self, universe_factory: UniverseFactory, nifty: NiftyPath, seed: int, start_epoch: float
    ) -> None:
        self.seed = seed
        self.generation = 0
        self.now = start_epoch
        self._factory = universe_factory
        self._nifty = nifty
        self._paths_cache: dict[date, SessionPaths] = {}
        self.ltp_changed = np.zeros(0, dtype=bool)
        self._open_session(session_day(start_epoch))
        self.advance(start_epoch)

    # --- session -----------------------------------------------------------------------------

    def _paths(self, day: date) -> SessionPaths:
        if day not in self._paths_cache:
            if len(self._paths_cache) > 64:
                self._paths_cache.clear()
            self._paths_cache[day] = sessions_for(self._nifty, day, self.seed)
        return self._paths_cache[day]

    def _open_session(self, day: date) -> None:
        self.session = day
        self.paths = self._paths(day)
        self.universe = self._factory(day, {n: p.open for n, p in zip(UNDERLYINGS, self.paths, strict=True)})
        instruments = self.universe.all()
        self.rows = {inst.instrument_token: row for row, inst in enumerate(instruments)}
        self.contracts = Contracts.from_instruments(instruments)
        self.dynamics: Dynamics = session_dynamics(self.contracts, self.paths, self.seed)
        self.table = TickColumns.for_tokens(self.contracts.tokens)
        self.table.open[:], self.table.close[:] = opening_prices(self.contracts, self.paths, self.seed)
        self.table.high[:] = self.table.low[:] = self.table.open
        self._slot = np.full(self.contracts.tokens.size, -np.inf)
        self.generation += 1

    # --- stepping ----------------------------------------------------------------------------

    def advance(self, now: float) -> np.ndarray:
        """Move to simulated epoch ``now``; a boolean mask of rows whose quote changed.

        Only rows whose half-second slot moved are re-evaluated. ``self.ltp_changed`` is set
        alongside: the rows whose last price changed (what ltp-mode subscribers get ticks for).
        """
        self.now = now
        rolled = session_day(now) != self.session
        if rolled:
            self._open_session(session_day(now))
        slot = self.dynamics.slot_times(now, session_close_epoch(self.session))
        due = np.flatnonzero(slot != self._slot)
        self._slot = slot
        changed = np.zeros(slot.size, dtype=bool)
        self.ltp_changed = np.zeros(slot.size, dtype=bool)
        if due.size:
            changed[due], self.ltp_changed[due] = self._evaluate(due, slot[due])
        if rolled:
            changed[:] = self.ltp_changed[:] = True
        return changed

    def _evaluate(self, due: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if due.size == self._slot.size:  # every row: slices, no gathers
            rows: np.ndarray | slice = slice(None)
            contracts, dynamics = self.contracts, self.dynamics
        else:
            rows, contracts, dynamics = due, self.contracts.take(due), self.dynamics.take(due)
        before = self.table.take(rows)
        evaluate(self.table, rows, slot, contracts, dynamics, self.paths, self.seed)
        after = self.table.take(rows)
        self._update_day_range(rows, after, contracts)
        return _changed(before, after), before.last != after.last

    def _update_day_range(self, due: np.ndarray | slice, after: TickColumns, contracts: Contracts) -> None:
        t = self.table
        high = t.high[due] = np.maximum(after.high, after.last)
        low = t.low[due] = np.minimum(after.low, after.last)
        typical = round_to_tick((after.open + high + low + after.last) / 4.0, contracts.tick)
        t.atp[due] = np.where(contracts.is_index, 0.0, typical)

    def finish_session(self) -> np.ndarray:
        """Advance to the session's last instant before 15:30, once: the rows whose quote changed in its
        final slots (the close's OI and trades), which the ticker publishes before the market shuts."""
        last = session_last_instant(self.session)
        if self.now >= last:
            self.ltp_changed = np.zeros(self._slot.size, dtype=bool)
            return self.ltp_changed.copy()
        return self.advance(last)

    def step(self, now: float) -> list[int]:
        """Advance to ``now``; the tokens whose quote changed."""
        changed = self.advance(now)
        return self.table.token[changed].astype(int).tolist()

    # --- reads -------------------------------------------------------------------------------

    def quote(self, token: int) -> Quote:
        """The current quote; KeyError for a token not listed today."""
        row, t = self.rows[token], self.table
        return Quote(
            last_price=float(t.last[row]),
            last_traded_quantity=int(t.ltq[row]),
            average_traded_price=float(t.atp[row]),
            volume=int(t.volume[row]),
            buy_quantity=int(t.buy_qty[row]),
            sell_quantity=int(t.sell_qty[row]),
            open=float(t.open[row]),
            high=float(t.high[row]),
            low=float(t.low[row]),
            close=float(t.close[row]),
            last_trade_time=float(t.ltt[row]),
            oi=int(t.oi[row]),
            oi_day_high=int(t.oi_day_high[row]),
            oi_day_low=int(t.oi_day_low[row]),
            timestamp=float(t.timestamp[row]),
            bids=_depth(t.bid_price[row], t.bid_qty[row], t.bid_orders[row]),
            asks=_depth(t.ask_price[row], t.ask_qty[row], t.ask_orders[row]),
        )

    def spot(self, underlying: str) -> float:
        path = self.paths[list(UNDERLYINGS).index(underlying)]
        return float(path.at(min(max(self.now, path.times[0]), path.times[-1])))

    def forward(self, underlying: str, expiry: date) -> float:
        """The model forward for ``expiry`` (15:30 IST) at the last stepped time."""
        expiry_epoch = session_close_epoch(expiry)
        years = max(expiry_epoch - self.now, 0.0) / SECONDS_PER_YEAR
        return float(forward_price(np.array(self.spot(underlying)), np.array(years)))

    # --- history -----------------------------------------------------------------------------

    def candles(self, token: int, interval: str, start: float, end: float) -> list[Candle]:
        """Kite-style candles over [start, end], market hours only, never past the simulated now."""
        minutes = INTERVAL_MINUTES[interval]
        inst = self.universe.by_token(token)
        if inst is None:
            raise KeyError(token)
        one = self.contracts.take(np.array([self.rows[token]]))
        out: list[Candle] = []
        for day in self._history_days(start, min(end, self.now), inst.expiry):
            bars = self._minute_bars(one, day)
            out.extend(_day_candle(day, bars) if minutes == 0 else _aggregate(bars, minutes))
        if minutes == 0:
            return out
        return [c for c in out if start <= c[0] <= end]

    def _history_days(self, start: float, end: float, expiry: date | None) -> list[date]:
        first = datetime.fromtimestamp(start, IST).date()
        last = min(datetime.fromtimestamp(end, IST).date(), self.session)
        if expiry is not None:  # a contract trades from its listing (about 4 months out) to expiry
            first, last = max(first, expiry - timedelta(days=LISTING_DAYS)), min(last, expiry)
        days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        return [d for d in days if is_trading_day(d) and session_open_epoch(d) <= end]

    def _minute_bars(self, one: Contracts, day: date) -> np.ndarray:
        """Rows of (start, open, high, low, close, volume, oi) for the day's minutes up to now.

        Built from what the ticker publishes (README "Candles and the stream"): a tradable
        instrument's candle from its trades (minutes without a trade have none, as on Kite), an
        index's from its values on its half-second publication grid.
        """
        paths = self._paths(day)
        dyn = session_dynamics(one, paths, self.seed)
        starts = session_open_epoch(day) + 60.0 * np.arange(MINUTES_PER_SESSION)
        starts = starts[starts <= self.now]
        if starts.size == 0:
            return np.empty((0, 7))
        ends = np.minimum(starts + 60.0, self.now)
        if one.is_index[0]:  # an index has neither volume nor OI
            ohlc = self._index_ohlc(one, dyn, paths, starts, ends)
            zeros = np.zeros(starts.size)
            return np.column_stack([starts, ohlc, zeros, zeros])
        return self._trade_bars(one, dyn, paths, starts, ends)

    def _price(self, one: Contracts, paths: SessionPaths, epochs: np.ndarray) -> np.ndarray:
        many = one.take(np.zeros(epochs.size, dtype=np.intp))
        return traded_prices(many, fair_values(many, spot_at(many, paths, epochs), epochs, self.seed))

    def _index_ohlc(
        self, one: Contracts, dyn: Dynamics, paths: SessionPaths, starts: np.ndarray, ends: np.ndarray
    ) -> np.ndarray:
        """OHLC of the published values: the path is linear between its knots, so a minute's extremes on
        the grid are at the grid points next to a knot or at the minute's first and last grid point."""
        phase = dyn.phase[0]

        def grid_floor(
            t: np.ndarray,
        ) -> np.ndarray:  # the publication slot at or before t (Dynamics.slot_times)
            since = np.maximum(t, dyn.open_epoch) - dyn.open_epoch
            return dyn.open_epoch + np.maximum(
                np.floor((since + phase) / SLOT_SECONDS) * SLOT_SECONDS - phase, 0.0
            )

        first = grid_floor(starts)
        first = np.where(first < starts, first + SLOT_SECONDS, first)
        last = grid_floor(np.where(ends < starts + 60.0, ends, starts + 60.0 - 1e-6))
        inner = [grid_floor(starts + knot) + step for knot in BAR_KNOTS[1:] for step in (0.0, SLOT_SECONDS)]
        points = np.column_stack([first, last, *(np.clip(p, first, last) for p in inner)])
        prices = self._price(one, paths, points.ravel()).reshape(points.shape)
        return np.column_stack([prices[:, 0], prices.max(axis=1), prices.min(axis=1), prices[:, 1]])

    def _trade_bars(
        self, one: Contracts, dyn: Dynamics, paths: SessionPaths, starts: np.ndarray, ends: np.ndarray
    ) -> np.ndarray:
        """Per minute, the trades printed in it (Dynamics.trades: trade 1 at the open, then every 1/rate s)."""
        rate, offset = dyn.trade_rate[0], dyn.trade_offset[0]

        def trades_before(t: np.ndarray) -> np.ndarray:  # count of trades strictly before t
            after_open = np.maximum(np.ceil(rate * (t - dyn.open_epoch) + offset) - 1.0, 1.0)
            return np.where(t > dyn.open_epoch, after_open, 0.0)

        before = trades_before(starts)
        # The current minute holds the trades up to now; a closed one, those before its end.
        upto = np.where(
            ends < starts + 60.0, np.floor(rate * (ends - dyn.open_epoch) + offset), trades_before(ends)
        )
        counts = (upto - before).astype(np.int64)
        keep = counts > 0
        starts, ends, before, upto, counts = starts[keep], ends[keep], before[keep], upto[keep], counts[keep]
        if starts.size == 0:
            return np.empty((0, 7))
        first = np.repeat(before + 1.0, counts)
        k = first + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        prices = self._price(one, paths, dyn.last_trade_epoch(k))
        heads = np.cumsum(counts) - counts
        tails = heads + counts - 1
        many = one.take(np.zeros(starts.size, dtype=np.intp))
        dyn_many = dyn.take(np.zeros(starts.size, dtype=np.intp))
        volume = cumulative_volume(many, dyn_many, upto) - cumulative_volume(many, dyn_many, before)
        oi = one.lot[0] * dyn.open_interest(upto)  # the OI after the minute's last trade
        return np.column_stack(
            [
                starts,
                prices[heads],
                np.maximum.reduceat(prices, heads),
                np.minimum.reduceat(prices, heads),
                prices[tails],
                volume,
                oi,
            ]
        )


def _as_candle(row: np.ndarray) -> Candle:
    return (
        float(row[0]),
        float(row[1]),
        float(row[2]),
        float(row[3]),
        float(row[4]),
        int(row[5]),
        int(row[6]),
    )


def _aggregate(bars: np.ndarray, minutes: int) -> list[Candle]:
    """N-minute candles aligned at the session open (09:15); a bucket without minutes has no candle."""
    if bars.size == 0:
        return []
    open_epoch = session_open_epoch(datetime.fromtimestamp(bars[0, 0], IST).date())
    bucket = np.floor((bars[:, 0] - open_epoch) / (60.0 * minutes))
    starts = np.flatnonzero(np.diff(bucket, prepend=-1.0))
    ends = np.append(starts[1:], len(bars)) - 1
    merged = np.column_stack(
        [
            open_epoch + bucket[starts] * 60.0 * minutes,
            bars[starts, 1],
            np.maximum.reduceat(bars[:, 2], starts),
            np.minimum.reduceat(bars[:, 3], starts),
            bars[ends, 4],
            np.add.reduceat(bars[:, 5], starts),
            bars[ends, 6],
        ]
    )
    return [_as_candle(row) for row in merged]


def _day_candle(day: date, bars: np.ndarray) -> list[Candle]:
    if bars.size == 0:
        return []
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=IST).timestamp()
    row = [
        midnight,
        bars[0, 1],
        bars[:, 2].max(),
        bars[:, 3].min(),
        bars[-1, 4],
        bars[:, 5].sum(),
        bars[-1, 6],
    ]
    return [_as_candle(np.array(row))]


PATHS = ("replay", "gbm", "trend")


def _nifty_path(path: str, seed: int, trend: TrendSpec) -> NiftyPath:
    if path == "replay":
        return NiftyReplay()
    return NiftyGbm(seed) if path == "gbm" else NiftyTrend(seed, trend)


def market_build(
    seed: int,
    start_epoch: float,
    *,
    path: str = "replay",
    trend: TrendSpec | None = None,
    instruments_csv: Path | None = None,
    strikes_each_side: int = 40,
) -> Market:
    """A market on the recorded NIFTY path (``path="replay"``), a seeded GBM (``"gbm"``) or a steady
    trend (``"trend"``, shaped by ``trend``, default :class:`kitesim.trend.TrendSpec`)."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    if trend is not None and path != "trend":
        raise ValueError(f"a trend spec needs path 'trend', got {path!r}")
    spec = trend or TrendSpec()
    nifty = _nifty_path(path, seed, spec)

    def factory(day: date, levels: Mapping[str, float]) -> Universe:
        if instruments_csv is not None:
            return universe_from_csv(instruments_csv, day)
        if path == "trend":  # centred on the day's range and wide enough for it: the walk stays in the chain
            return universe_generate(
                day,
                levels=trend_chain_levels(spec),
                strikes_each_side=trend_strikes_each_side(spec, strikes_each_side),
            )
        # Replay stays near the reference level, so keep the default strikes: stable across days.
        return universe_generate(
            day, levels=levels if path == "gbm" else None, strikes_each_side=strikes_each_side
        )

    return Market(factory, nifty, seed, start_epoch)
