"""Per-token bar state and the two ways a frame's ticks merge into it (pure: numpy only).

``ticks.bars.aggregator.MinuteBars`` owns the clock and the closing rules; this module holds what it
works on: ``TokenState`` (per-token arrays aligned with a sorted token array), the frame ``Layout``
(which rows are primary, their slots), ``merge_ticks`` (the fast path: each token once, all in the
open minute) and the general path (``Columns``/``Runs`` sorted by slot and minute, reduced with
``ufunc.reduceat``: ``merge_into``, ``open_from``, ``remember``). The rules are in the aggregator's
docstring; the tests run both paths on the same streams.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ticks.feeds.protocol import SEGMENT_INDICES

BAR_SECONDS: Final = 60
IST_OFFSET_S: Final = 19_800  # trading days are IST days
NO_BAR: Final = -1
_GROUP_LIFT: Final = 1 << 33  # above any volume_traded (a uint32 on the wire)

BAR_DTYPE: Final = np.dtype(
    [
        ("instrument_token", np.int64),
        ("start", np.int64),  # epoch seconds of the minute's first instant
        ("open", np.float64),
        ("high", np.float64),
        ("low", np.float64),
        ("close", np.float64),
        ("volume", np.int64),
        ("oi", np.int64),
        ("ticks", np.int64),
        ("partial", np.bool_),
    ]
)
BarArray = npt.NDArray[np.void]
IntArray = npt.NDArray[np.int64]


class TokenState:
    """Per-token arrays aligned with the sorted ``tokens`` array."""

    INT_DEFAULTS: Final = {
        "start": NO_BAR,  # the open bar's minute, NO_BAR when none
        "volume": 0,
        "ticks": 0,
        "first_at": 0,  # exchange times of the ticks that set open and close
        "last_at": 0,
        "seen_at": -1,  # newest exchange time applied to the token; -1 never seen
        "base": -1,  # volume_traded the next increment is measured from; -1 unknown
        "base_day": -1,  # the IST day of that base
        "oi": 0,
    }
    FLOATS: Final = ("open", "high", "low", "close")

    def __init__(self) -> None:
        self.tokens: IntArray = np.empty(0, np.int64)
        self.ints = {name: np.full(0, value, np.int64) for name, value in self.INT_DEFAULTS.items()}
        self.floats = {name: np.empty(0, np.float64) for name in self.FLOATS}
        self.partial = np.empty(0, np.bool_)

    def slots(self, tokens: IntArray) -> npt.NDArray[np.intp]:
        """Each token's slot, adding the tokens not seen before (rare: after a plan change)."""
        known = member(tokens, self.tokens)
        if not known.all():
            self._grow(np.unique(tokens[~known]))
        return np.searchsorted(self.tokens, tokens)

    def _grow(self, new: IntArray) -> None:
        tokens = np.union1d(self.tokens, new)
        old_at = np.searchsorted(tokens, self.tokens)
        for name, value in self.INT_DEFAULTS.items():
            self.ints[name] = _regrown(self.ints[name], old_at, tokens.size, value)
        for name in self.FLOATS:
            self.floats[name] = _regrown(self.floats[name], old_at, tokens.size, np.nan)
        self.partial = _regrown(self.partial, old_at, tokens.size, False)
        self.tokens = tokens

    def bars(self, slots: npt.NDArray[np.intp] | slice) -> BarArray:
        ints = {name: self.ints[name][slots] for name in ("start", "volume", "oi", "ticks")}
        floats = {name: self.floats[name][slots] for name in self.FLOATS}
        return _bars(self.tokens[slots], ints, floats, self.partial[slots])


def _bars(
    tokens: IntArray,
    ints: dict[str, IntArray],
    floats: dict[str, npt.NDArray[np.float64]],
    partial: npt.NDArray[np.bool_],
) -> BarArray:
    out = np.empty(tokens.size, BAR_DTYPE)
    out["instrument_token"] = tokens
    for name in ("start", "volume", "oi", "ticks"):
        out[name] = ints[name]
    for name in TokenState.FLOATS:
        out[name] = floats[name]
    out["partial"] = partial
    return out


def _regrown(values: npt.NDArray, old_at: npt.NDArray[np.intp], size: int, fill: object) -> npt.NDArray:
    out = np.full(size, fill, values.dtype)
    out[old_at] = values
    return out


@dataclass(frozen=True, slots=True)
class Layout:
    primary: IntArray  # the primary array it was computed for (by identity)
    state_size: int  # slots shift when tokens are added
    keep: npt.NDArray[np.intp]  # the frame's primary rows: by slot when each appears once, else as they came
    slots: npt.NDArray[np.intp]  # their slots
    once: bool  # every token appears once: then ``keep`` is already in the order runs need
    index: npt.NDArray[np.bool_]  # per kept row: an index token (no volume, no OI)
    # ``slots`` again, as a slice when they are consecutive (one connection, or every token of the
    # state): the fast path then works on views of the state, with no gather or scatter.
    window: npt.NDArray[np.intp] | slice


def member(tokens: IntArray, primary: IntArray) -> npt.NDArray[np.bool_]:
    if primary.size == 0:
        return np.zeros(tokens.size, np.bool_)
    at = np.minimum(np.searchsorted(primary, tokens), primary.size - 1)
    return primary[at] == tokens


@dataclass(frozen=True, slots=True)
class Columns:
    """The fields bars need, for the kept ticks in sorted order (gathering whole rows costs 10x)."""

    token: IntArray
    price: npt.NDArray[np.float64]
    volume: IntArray
    oi: IntArray
    full: npt.NDArray[np.bool_]
    ltp: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, ticks: npt.NDArray[np.void], rows: npt.NDArray[np.intp]) -> "Columns":
        mode = ticks["mode"][rows]
        return cls(
            token=ticks["instrument_token"][rows],
            price=ticks["last_price"][rows],
            volume=ticks["volume_traded"][rows],
            oi=ticks["oi"][rows],
            full=mode == "full",
            ltp=mode == "ltp",
        )


@dataclass(frozen=True, slots=True)
class Runs:
    """One row per (slot, minute) run of the sorted frame."""

    slot: npt.NDArray[np.intp]
    minute: IntArray
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    first_at: IntArray
    last_at: IntArray
    ticks: IntArray
    volume: IntArray
    oi: IntArray  # the slot's newest OI up to the run's end (carried in when the frame has none)
    seen_at: IntArray  # newest exchange time applied to the slot up to this run
    base: IntArray  # the slot's volume base after this run
    base_day: IntArray

    @classmethod
    def of(
        cls,
        ticks: Columns,
        slots: npt.NDArray[np.intp],
        at: IntArray,
        minute: IntArray,
        state: TokenState,
    ) -> "Runs":
        n = slots.size
        edge = np.empty(n, np.bool_)
        edge[0] = True
        np.not_equal(slots[1:], slots[:-1], out=edge[1:])
        edge[1:] |= minute[1:] != minute[:-1]
        starts = np.flatnonzero(edge)
        ends = np.append(starts[1:], n) - 1
        price = ticks.price
        # Only ticks newer than what the token already had move its OI (a late tick's is stale).
        fresh = at >= state.ints["seen_at"][slots]
        index = (ticks.token & 0xFF) == SEGMENT_INDICES
        has_volume = ~ticks.ltp & ~index
        increments, base, base_day = volume_increments(ticks.volume, at, slots, has_volume, state)
        position = np.arange(n)
        newest_oi = np.maximum.accumulate(np.where(fresh & ticks.full & ~index, position, -1))
        oi_at = newest_oi[ends]
        own_oi = (oi_at >= 0) & (slots[np.maximum(oi_at, 0)] == slots[ends])
        carried_oi = state.ints["oi"][slots[ends]]
        # A slot's earlier run in this frame may have set the OI a later run carries.
        oi = np.where(own_oi, ticks.oi[np.maximum(oi_at, 0)], carried_oi)
        # Times ascend within a slot (sorted by minute, then time), so the newest so far is the time.
        seen = np.maximum(at, state.ints["seen_at"][slots])
        return cls(
            slot=slots[starts],
            minute=minute[starts],
            open=price[starts],
            high=np.maximum.reduceat(price, starts),
            low=np.minimum.reduceat(price, starts),
            close=price[ends],
            first_at=at[starts],
            last_at=at[ends],
            ticks=np.diff(np.append(starts, n)),
            volume=np.add.reduceat(increments, starts),
            oi=oi,
            seen_at=seen[ends],
            base=base[ends],
            base_day=base_day[ends],
        )

    def bars(self, rows: npt.NDArray[np.intp], state: TokenState) -> BarArray:
        """Runs that are whole bars (a minute after the open one, closed within the frame)."""
        out = np.empty(rows.size, BAR_DTYPE)
        out["instrument_token"] = state.tokens[self.slot[rows]]
        out["start"] = self.minute[rows]
        for name in ("open", "high", "low", "close", "volume", "oi", "ticks"):
            out[name] = getattr(self, name)[rows]
        out["partial"] = first_minute_of(self, rows, state)
        return out


def first_minute_of(runs: Runs, rows: npt.NDArray[np.intp], state: TokenState) -> npt.NDArray[np.bool_]:
    """True for a run that is the first minute the token was ever seen (its start was missed)."""
    never_seen = state.ints["seen_at"][runs.slot[rows]] < 0
    earlier_in_frame = np.zeros(rows.size, np.bool_)
    has_prev = rows > 0
    prev = np.maximum(rows - 1, 0)
    earlier_in_frame[has_prev] = runs.slot[prev[has_prev]] == runs.slot[rows[has_prev]]
    return never_seen & ~earlier_in_frame


def volume_increments(
    volume: IntArray,
    at: IntArray,
    slots: npt.NDArray[np.intp],
    counted: npt.NDArray[np.bool_],
    state: TokenState,
) -> tuple[IntArray, IntArray, IntArray]:
    """Per tick (sorted order): the volume it adds, and the slot's high-water mark and its day after it.

    The added volume is the growth of the day's high-water mark of ``volume_traded``: a running max
    per (slot, day), seeded with the carried mark on the same day, else with the day's first tick.
    """
    n = slots.size
    day = (at + IST_OFFSET_S) // 86_400
    carried, carried_day = state.ints["base"][slots], state.ints["base_day"][slots]
    counted = counted & (day >= carried_day)  # a straggler from a day already left counts nothing
    increments = np.zeros(n, np.int64)
    rows = np.flatnonzero(counted)
    marks = np.zeros(n, np.int64)
    if rows.size:
        v, d, s = volume[rows], day[rows], slots[rows]
        edge = np.empty(rows.size, np.bool_)
        edge[0] = True
        edge[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
        starts = np.flatnonzero(edge)
        # Only a slot's first group can share the carried day (days ascend within a slot).
        continues = (d[starts] == carried_day[rows[starts]]) & (carried[rows[starts]] >= 0)
        # A new day of a token seen before (an earlier day carried in, or an earlier group of this
        # frame) starts from 0; a token never seen starts from its first figure.
        slot_first = np.empty(rows.size, np.bool_)
        slot_first[0] = True
        slot_first[1:] = s[1:] != s[:-1]
        seen_before = ~slot_first[starts] | (carried_day[rows[starts]] >= 0)
        initial = np.where(continues, carried[rows[starts]], np.where(seen_before, 0, v[starts]))
        seeded = v.copy()
        seeded[starts] = np.maximum(v[starts], initial)
        # One running max over every group at once: each group is lifted above the ones before it.
        lift = (np.cumsum(edge) - 1) * _GROUP_LIFT
        mark = np.maximum.accumulate(seeded + lift) - lift
        before = np.empty_like(mark)
        before[1:] = mark[:-1]
        before[starts] = initial
        increments[rows] = mark - before
        marks[rows] = mark
    newest = np.maximum.accumulate(np.where(counted, np.arange(n), -1))
    pick = np.maximum(newest, 0)
    own = (newest >= 0) & (slots[pick] == slots)
    return increments, np.where(own, marks[pick], carried), np.where(own, day[pick], carried_day)


def merge_ticks(
    state: TokenState, ticks: npt.NDArray[np.void], layout: Layout, at: IntArray, minute: int
) -> BarArray:
    """The fast path of ``update``: each kept tick is its token's only one in the frame and falls in
    the open minute, so it merges straight into the token's state (the rules of ``Runs.of``,
    ``volume_increments``, ``merge_into`` and ``remember`` for a run of one tick), in place on
    the state's columns (views of them when the slots are consecutive, else gathered and scattered
    back). Returns the forming bars of the frame's tokens; nothing closes."""
    keep, window, index = layout.keep, layout.window, layout.index
    ints = {name: column[window] for name, column in state.ints.items()}
    floats = {name: column[window] for name, column in state.floats.items()}
    partial = state.partial[window]
    price, volume = ticks["last_price"][keep], ticks["volume_traded"][keep]
    full = (ticks["mode"] == "full")[keep]  # compared before gathering: a string gather costs 4x
    ltp = np.zeros(keep.size, np.bool_) if full.all() else (ticks["mode"] == "ltp")[keep]
    new_bar = ints["start"] == NO_BAR
    seen_at = ints["seen_at"]
    # Open and close: the tick is older than the bar's open, or at least as new as its close.
    opens = new_bar | (at < ints["first_at"])
    np.copyto(floats["open"], price, where=opens)
    np.copyto(ints["first_at"], at, where=opens)
    closes = new_bar | (at >= ints["last_at"])
    np.copyto(floats["close"], price, where=closes)
    np.copyto(ints["last_at"], at, where=closes)
    np.fmax(floats["high"], price, out=floats["high"])
    np.copyto(floats["high"], price, where=new_bar)
    np.fmin(floats["low"], price, out=floats["low"])
    np.copyto(floats["low"], price, where=new_bar)
    # Volume: the growth of the day's high-water mark; a token's first counted tick of a day sets it.
    base, base_day = ints["base"], ints["base_day"]
    day = (at + IST_OFFSET_S) // 86_400
    counted = ~ltp & ~index & (day >= base_day)
    continues = counted & (day == base_day) & (base >= 0)
    new_day = counted & (day > base_day) & (base_day >= 0)  # seen on an earlier day: starts from 0
    np.copyto(ints["volume"], 0, where=new_bar)
    ints["volume"] += np.where(continues, np.maximum(volume - base, 0), np.where(new_day, volume, 0))
    np.copyto(base, np.where(continues, np.maximum(volume, base), volume), where=counted)
    np.copyto(base_day, day, where=counted)
    np.copyto(ints["ticks"], 0, where=new_bar)
    ints["ticks"] += 1
    # OI: only a tick newer than what the token already had moves it (a late tick's is stale).
    np.copyto(ints["oi"], ticks["oi"][keep], where=(at >= seen_at) & full & ~index)
    np.copyto(partial, seen_at < 0, where=new_bar)
    np.maximum(seen_at, at, out=seen_at)
    ints["start"][:] = minute
    if not isinstance(window, slice):  # gathered copies: put them back
        for name, column in ints.items():
            state.ints[name][window] = column
        for name, column in floats.items():
            state.floats[name][window] = column
        state.partial[window] = partial
    return _bars(state.tokens[window], ints, floats, partial)


def merge_into(state: TokenState, runs: Runs, rows: npt.NDArray[np.intp]) -> None:
    """Runs of the open minute join their slot's open bar, or open it."""
    if rows.size == 0:
        return
    slot = runs.slot[rows]
    ints, floats = state.ints, state.floats
    has_bar = ints["start"][slot] != NO_BAR
    opens_earlier = ~has_bar | (runs.first_at[rows] < ints["first_at"][slot])
    closes_later = ~has_bar | (runs.last_at[rows] >= ints["last_at"][slot])
    floats["open"][slot] = np.where(opens_earlier, runs.open[rows], floats["open"][slot])
    ints["first_at"][slot] = np.where(opens_earlier, runs.first_at[rows], ints["first_at"][slot])
    floats["close"][slot] = np.where(closes_later, runs.close[rows], floats["close"][slot])
    ints["last_at"][slot] = np.where(closes_later, runs.last_at[rows], ints["last_at"][slot])
    floats["high"][slot] = np.where(has_bar, np.fmax(floats["high"][slot], runs.high[rows]), runs.high[rows])
    floats["low"][slot] = np.where(has_bar, np.fmin(floats["low"][slot], runs.low[rows]), runs.low[rows])
    ints["volume"][slot] = np.where(has_bar, ints["volume"][slot], 0) + runs.volume[rows]
    ints["ticks"][slot] = np.where(has_bar, ints["ticks"][slot], 0) + runs.ticks[rows]
    ints["oi"][slot] = runs.oi[rows]  # the bar may close within this frame, before remember
    state.partial[slot] = np.where(has_bar, state.partial[slot], ints["seen_at"][slot] < 0)
    ints["start"][slot] = runs.minute[rows]


def open_from(state: TokenState, runs: Runs, rows: npt.NDArray[np.intp]) -> None:
    """Runs of a newer minute than the open one become their slot's open bar."""
    if rows.size == 0:
        return
    slot = runs.slot[rows]
    state.partial[slot] = first_minute_of(runs, rows, state)
    for name in ("open", "high", "low", "close"):
        state.floats[name][slot] = getattr(runs, name)[rows]
    for name in ("first_at", "last_at", "volume", "ticks"):
        state.ints[name][slot] = getattr(runs, name)[rows]
    state.ints["start"][slot] = runs.minute[rows]


def remember(state: TokenState, runs: Runs) -> None:
    """The per-token memory that outlives bars: newest time, volume base, OI (the slot's last run)."""
    last = np.flatnonzero(np.append(runs.slot[1:] != runs.slot[:-1], True))
    slot = runs.slot[last]
    state.ints["seen_at"][slot] = runs.seen_at[last]
    state.ints["base"][slot] = runs.base[last]
    state.ints["base_day"][slot] = runs.base_day[last]
    state.ints["oi"][slot] = runs.oi[last]
