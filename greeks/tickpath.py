"""Greeks for the option rows of one decoded feed frame (pure: numpy in and out; no Django, Redis, clock).

Per frame: the rows are located in a token-sorted ``InstrumentTable`` by one ``searchsorted``, their
last prices go onto a ``PriceBoard`` (this process's latest price per instrument), each chain in the
frame gets a forward from the board, and every option row (last price and, where the book has both
sides, the mid) goes through ONE vectorised engine call.

Forward of a chain (underlying + expiry), best source first:

1. the same-expiry future's last price;
2. put-call parity on the priced pair with the smallest |C - P| (the pair nearest ATM, found without
   an outside price): F = K + (C - P) e^{rT}. Option prices are discounted, so C - P = e^{-rT}(F - K);
   the factor is 1.0012 at 7 days and 6.5 %, a few paise at ATM, but it is free, so it is applied;
3. the index carried at the configured rate, S e^{rT}, flagged ``ForwardSource.INDEX``.

A source counts only if its price is positive and at most ``SOURCE_MAX_AGE_S`` of market time old
(from its last trade time where the packet carries one), so an unsubscribed future or a leg that has
not traded for a while does not pin a chain to a stale forward.

Market time: a row's time to expiry is measured from its own exchange timestamp. Packets without one
(ltp and quote modes) use the newest exchange timestamp of the frame, else the caller's fallback
(the newest the feed has seen, else the receive time).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from greeks.backends import ImpliedVolAndGreeks
from greeks.engine import IST, NSE_EXPIRY_CUTOFF, SECONDS_PER_YEAR, Model
from greeks.records import (
    FORWARD_DTYPE,
    ChainKey,
    ForwardSource,
    GreeksRecords,
    blobs,
    empty_greeks,
    forward_field,
)
from greeks.status import GreeksStatus

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

KIND_INDEX, KIND_FUT, KIND_CE, KIND_PE = 0, 1, 2, 3
KIND_CODES: Final = {"IDX": KIND_INDEX, "FUT": KIND_FUT, "CE": KIND_CE, "PE": KIND_PE}
SOURCE_MAX_AGE_S = 60.0
_NO_ROW = -1


@dataclass(frozen=True, slots=True)
class InstrumentRow:
    """What the tick path needs to know about one instrument; ``kind`` is CE, PE, FUT or IDX."""

    token: int
    underlying: str  # an index row carries the underlying it prices, e.g. NIFTY for NIFTY 50
    expiry: date | None
    strike: float
    kind: str


@dataclass(frozen=True, eq=False)
class InstrumentTable:
    """Instrument metadata as arrays, one row per token in ascending token order.

    Chains are numbered 0..len(chains)-1; ``pair_*`` lists every strike of a chain that has both a
    CE and a PE, grouped by chain: chain c's pairs are ``pair_start[c]:pair_start[c + 1]``.
    """

    tokens: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int8]
    strike: FloatArray
    cutoff: FloatArray  # epoch of 15:30 IST on expiry day; NaN for an index
    chain: IntArray  # -1 for an index
    chains: tuple[ChainKey, ...]
    chain_cutoff: FloatArray
    chain_future: IntArray  # row of the same-expiry future, or -1
    chain_index: IntArray  # row of the underlying's index, or -1
    pair_call: IntArray
    pair_put: IntArray
    pair_start: IntArray

    def __len__(self) -> int:
        return int(self.tokens.size)

    def lookup(self, tokens: npt.ArrayLike) -> tuple[IntArray, BoolArray]:
        """Row of each token (0 where unknown) and whether it is known."""
        tokens = np.asarray(tokens, dtype=np.int64)
        rows = np.searchsorted(self.tokens, tokens)
        rows[rows == self.tokens.size] = 0
        known = self.tokens[rows] == tokens if self.tokens.size else np.zeros(tokens.size, dtype=bool)
        return np.where(known, rows, 0), known


def expiry_cutoff(expiry: date) -> float:
    """Epoch of 15:30 IST on ``expiry``: ``engine.year_fraction`` is (cutoff - now) / SECONDS_PER_YEAR."""
    return datetime.combine(expiry, NSE_EXPIRY_CUTOFF, tzinfo=IST).timestamp()


def instrument_table_build(rows: Iterable[InstrumentRow]) -> InstrumentTable:
    """Index the rows by token; a token listed twice keeps the row with the later expiry."""
    by_token: dict[int, InstrumentRow] = {}
    for row in rows:
        if row.kind != "IDX" and row.expiry is None:
            continue  # a derivative without an expiry cannot be priced
        held = by_token.get(row.token)
        if held is None or (row.expiry or date.min) >= (held.expiry or date.min):
            by_token[row.token] = row
    ordered = [by_token[token] for token in sorted(by_token)]
    chains = sorted({ChainKey(r.underlying, r.expiry) for r in ordered if r.kind != "IDX" and r.expiry})
    chain_ids = {chain: i for i, chain in enumerate(chains)}
    chain = np.array([chain_ids.get(ChainKey(r.underlying, r.expiry), _NO_ROW) for r in ordered], np.intp)
    call_rows, put_rows, pair_start = _pairs(ordered, chain, len(chains))
    return InstrumentTable(
        tokens=np.array([r.token for r in ordered], dtype=np.int64),
        kind=np.array([KIND_CODES[r.kind] for r in ordered], dtype=np.int8),
        strike=np.array([r.strike for r in ordered], dtype=np.float64),
        cutoff=np.array([expiry_cutoff(r.expiry) if r.expiry else np.nan for r in ordered]),
        chain=chain,
        chains=tuple(chains),
        chain_cutoff=np.array([expiry_cutoff(c.expiry) for c in chains], dtype=np.float64),
        chain_future=_chain_rows(ordered, chain_ids, "FUT"),
        chain_index=_index_rows(ordered, chains),
        pair_call=call_rows,
        pair_put=put_rows,
        pair_start=pair_start,
    )


def _chain_rows(ordered: list[InstrumentRow], chain_ids: dict[ChainKey, int], kind: str) -> IntArray:
    out = np.full(len(chain_ids), _NO_ROW, dtype=np.intp)
    for i, row in enumerate(ordered):
        if row.kind == kind and row.expiry is not None:
            out[chain_ids[ChainKey(row.underlying, row.expiry)]] = i
    return out


def _index_rows(ordered: list[InstrumentRow], chains: list[ChainKey]) -> IntArray:
    index_of = {row.underlying: i for i, row in enumerate(ordered) if row.kind == "IDX"}
    return np.array([index_of.get(c.underlying, _NO_ROW) for c in chains], dtype=np.intp)


def _pairs(
    ordered: list[InstrumentRow], chain: IntArray, n_chains: int
) -> tuple[IntArray, IntArray, IntArray]:
    legs: dict[tuple[int, float], dict[str, int]] = {}
    for i, row in enumerate(ordered):
        if row.kind in ("CE", "PE"):
            legs.setdefault((int(chain[i]), row.strike), {})[row.kind] = i
    pairs = sorted((key, pair["CE"], pair["PE"]) for key, pair in legs.items() if len(pair) == 2)
    pair_chain = np.array([key[0] for key, _, _ in pairs], dtype=np.intp)
    call_rows = np.array([ce for _, ce, _ in pairs], dtype=np.intp)
    put_rows = np.array([pe for _, _, pe in pairs], dtype=np.intp)
    return call_rows, put_rows, np.searchsorted(pair_chain, np.arange(n_chains + 1)).astype(np.intp)


@dataclass(eq=False)
class PriceBoard:
    """This process's latest positive price of every table row and the market time it was seen at."""

    last: FloatArray
    seen_at: FloatArray

    @classmethod
    def empty(cls, n: int) -> "PriceBoard":
        return cls(np.zeros(n), np.full(n, -np.inf))

    def update(self, rows: IntArray, last: FloatArray, at: FloatArray) -> None:
        priced = last > 0.0  # an ltp of 0 means "no trade yet", not a price
        self.last[rows[priced]] = last[priced]
        self.seen_at[rows[priced]] = at[priced]

    def fresh(self, rows: IntArray, now: float) -> BoolArray:
        """Rows (-1 allowed, never fresh) holding a price at most SOURCE_MAX_AGE_S old."""
        safe = np.maximum(rows, 0)
        return (rows >= 0) & (self.last[safe] > 0.0) & (self.seen_at[safe] >= now - SOURCE_MAX_AGE_S)

    def remapped(self, old: InstrumentTable, new: InstrumentTable) -> "PriceBoard":
        """The same prices on a reloaded table's rows; tokens the new table lacks are dropped."""
        board = PriceBoard.empty(len(new))
        rows, known = new.lookup(old.tokens)
        board.last[rows[known]] = self.last[known]
        board.seen_at[rows[known]] = self.seen_at[known]
        return board


class FrameView(NamedTuple):
    """One frame located in the table, with its prices already on the board."""

    ticks: npt.NDArray[np.void]
    rows: IntArray  # table row of each tick (0 where unknown)
    known: BoolArray
    at: FloatArray  # market time of each tick
    now: float  # market time of the frame: its newest exchange timestamp, else the fallback
    options: IntArray  # positions in ``ticks`` of the known option rows
    chains: IntArray  # distinct chains of those options, ascending

    @property
    def unknown_tokens(self) -> npt.NDArray[np.int64]:
        return self.ticks["instrument_token"][~self.known]


class FrameGreeks(NamedTuple):
    tokens: npt.NDArray[np.int64]
    records: GreeksRecords  # GREEKS_DTYPE, one per option row of the frame
    chains: tuple[ChainKey, ...]
    forwards: npt.NDArray[np.void]  # FORWARD_DTYPE, one per chain

    def mapping(self) -> dict[bytes | str, bytes]:
        """The fields of one HSET to ``greeks:latest``: every option's record and every chain's forward.

        Tokens go as their decimal digits already in bytes (what redis-py would send for the int),
        converted in C: redis-py's own per-field int -> str -> bytes is a third of the HSET's cost.
        """
        tokens = self.tokens.astype(np.bytes_).tolist()
        fields: dict[bytes | str, bytes] = dict(zip(tokens, blobs(self.records), strict=True))
        fields.update(zip(map(forward_field, self.chains), blobs(self.forwards), strict=True))
        return fields


def frame_view(
    table: InstrumentTable, board: PriceBoard, ticks: npt.NDArray[np.void], fallback_now: float
) -> FrameView:
    """Locate the frame's rows and put their prices on the board."""
    rows, known = table.lookup(ticks["instrument_token"])
    stamped = ticks["exchange_timestamp"].astype(np.float64)
    now = float(stamped.max()) if stamped.size and stamped.max() > 0 else fallback_now
    at = np.where(stamped > 0, stamped, now)
    board.update(rows[known], ticks["last_price"][known], priced_at(ticks, at)[known])
    options = np.flatnonzero(known & (table.kind[rows] >= KIND_CE))
    return FrameView(ticks, rows, known, at, now, options, np.unique(table.chain[rows[options]]))


def priced_at(ticks: npt.NDArray[np.void], at: FloatArray) -> FloatArray:
    """When each row's last price was made: its last trade time where the packet has one (full
    mode), else ``at``. A book update re-sends an old last price with a new exchange timestamp."""
    traded = ticks["last_trade_time"].astype(np.float64)
    return np.where(traded > 0, traded, at)


def sources_missing(table: InstrumentTable, board: PriceBoard, chains: IntArray, now: float) -> IntArray:
    """Table rows of the futures and indexes of ``chains`` that the board has no fresh price for."""
    companions = np.concatenate([table.chain_future[chains], table.chain_index[chains]])
    companions = np.unique(companions[companions >= 0])
    return companions[~board.fresh(companions, now)]


def chain_forwards(
    table: InstrumentTable, board: PriceBoard, chains: IntArray, now: float, rate: float
) -> tuple[FloatArray, npt.NDArray[np.int8], FloatArray]:
    """Forward, ``ForwardSource`` and years to expiry of each chain at market time ``now``."""
    t = (table.chain_cutoff[chains] - now) / SECONDS_PER_YEAR
    carry = np.exp(rate * np.maximum(t, 0.0))
    future, index = table.chain_future[chains], table.chain_index[chains]
    parity, has_parity = _parity_forwards(table, board, chains, now, carry)
    has_future, has_index = board.fresh(future, now), board.fresh(index, now)
    source = np.select(
        [has_future, has_parity, has_index],
        [ForwardSource.FUTURE, ForwardSource.PARITY, ForwardSource.INDEX],
        ForwardSource.NONE,
    ).astype(np.int8)
    forward = np.select(
        [has_future, has_parity, has_index],
        [board.last[np.maximum(future, 0)], parity, board.last[np.maximum(index, 0)] * carry],
        np.nan,
    )
    return forward, source, t


def _parity_forwards(
    table: InstrumentTable, board: PriceBoard, chains: IntArray, now: float, carry: FloatArray
) -> tuple[FloatArray, BoolArray]:
    starts, counts = table.pair_start[chains], table.pair_start[chains + 1] - table.pair_start[chains]
    forward, found = np.full(chains.size, np.nan), np.zeros(chains.size, dtype=bool)
    if counts.sum() == 0:
        return forward, found
    offsets = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(chains.size), counts)
    pairs = np.arange(counts.sum()) - np.repeat(offsets, counts) + np.repeat(starts, counts)
    calls, puts = table.pair_call[pairs], table.pair_put[pairs]
    priced = board.fresh(calls, now) & board.fresh(puts, now)
    gap = board.last[calls] - board.last[puts]
    order = np.lexsort((np.where(priced, np.abs(gap), np.inf), owner))
    has_pairs = counts > 0
    best = order[offsets[has_pairs]]
    found[has_pairs] = priced[best]
    forward[has_pairs] = table.strike[calls[best]] + gap[best] * carry[has_pairs]
    return np.where(found, forward, np.nan), found


def frame_greeks(
    table: InstrumentTable,
    board: PriceBoard,
    view: FrameView,
    *,
    rate: float,
    model: Model,
    solve: ImpliedVolAndGreeks,
    computed_at: float,
) -> FrameGreeks:
    """IV (last and mid) and Greeks of the frame's option rows, in one call to ``solve``."""
    forward, source, chain_t = chain_forwards(table, board, view.chains, view.now, rate)
    options, rows = view.options, view.rows[view.options]
    which = np.searchsorted(view.chains, table.chain[rows])
    at = view.at[options]
    t = (table.cutoff[rows] - at) / SECONDS_PER_YEAR
    row_forward = forward[which]
    # Column by column: gathering whole rows of the wide tick dtype costs ~1 ms per 3000.
    last = view.ticks["last_price"][options]
    bid, ask = view.ticks["bid_price"][options, 0], view.ticks["ask_price"][options, 0]
    quoted = np.flatnonzero((bid > 0.0) & (ask > 0.0))
    solved = _solve_last_and_mid(
        solve,
        last,
        0.5 * (bid + ask)[quoted],
        quoted,
        row_forward,
        table.strike[rows],
        t,
        table.kind[rows] == KIND_CE,
        rate,
        model,
    )
    records = _records(solved, quoted, last.size)
    records["forward"], records["forward_source"] = row_forward, source[which]
    records["t_years"], records["market_time"] = t, at
    records["computed_at"] = computed_at
    status = records["status"]
    status[np.isnan(row_forward)] = GreeksStatus.NO_FORWARD
    status[~(last > 0.0)] = GreeksStatus.NO_PRICE
    forwards = _forward_records(forward, source, chain_t, view.now, computed_at)
    chains = tuple(table.chains[c] for c in view.chains)
    tokens = view.ticks["instrument_token"][options].astype(np.int64)
    return FrameGreeks(tokens, records, chains, forwards)


def _solve_last_and_mid(
    solve: ImpliedVolAndGreeks,
    last: FloatArray,
    mid: FloatArray,
    quoted: IntArray,
    forward: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    is_call: BoolArray,
    rate: float,
    model: Model,
) -> tuple[FloatArray, ...]:
    """One engine call over [every row's last price, the mid of the rows with a two-sided book]."""
    # "bs" takes spot: the discounted forward prices the option exactly as Black-76 on F does.
    underlying = forward if model == "black76" else forward * np.exp(-rate * t)
    lanes = np.concatenate([np.arange(last.size), quoted])
    return tuple(
        solve(
            np.concatenate([last, mid]),
            underlying[lanes],
            strike[lanes],
            t[lanes],
            rate,
            is_call[lanes],
            model,
        )
    )


def _records(solved: tuple[FloatArray, ...], quoted: IntArray, n: int) -> GreeksRecords:
    iv, delta, gamma, theta, vega, rho, status = (column[:n] for column in solved)
    records = empty_greeks(n)
    for name, column in zip(
        ("iv", "delta", "gamma", "theta", "vega", "rho"), (iv, delta, gamma, theta, vega, rho), strict=True
    ):
        records[name] = column
    records["status"] = status
    records["iv_mid"][quoted] = solved[0][n:]
    return records


def _forward_records(
    forward: FloatArray, source: npt.NDArray[np.int8], t: FloatArray, now: float, computed_at: float
) -> npt.NDArray[np.void]:
    out = np.empty(forward.size, dtype=FORWARD_DTYPE)
    out["forward"], out["forward_source"], out["t_years"] = forward, source, t
    out["market_time"], out["computed_at"] = now, computed_at
    return out
