"""Live 1-minute bars from decoded tick frames (pure: numpy only; no Django, Redis or clock).

``MinuteBars.update(ticks, primary)`` takes one decoded frame (``TICK_DTYPE`` rows) and
the account's primary tokens, and returns the bars the frame closed, the forming bars of the tokens
it touched, and how many ticks came too late. One vectorised pass per frame: the frame's ticks are
sorted by (token slot, minute, exchange time) and each (slot, minute) run is reduced with
``ufunc.reduceat``; per-token state lives in arrays aligned with a sorted token array. The usual
frame (each token once, every tick in the open minute, which it leaves open) skips the sort and the
runs: its ticks merge straight into the state, by the same rules (``_merge_ticks``; the tests run
both paths on the same streams).

Rules (README "Bars"):

* **Primary tokens only.** The planner puts an underlying's index and near future on every
  connection that carries its options; only the primary copy makes bars, so nothing is counted twice.
* **Clock.** Ticks are bucketed by ``exchange_timestamp`` (floored to the minute). A packet without
  one (``ltp`` mode, quote-mode and index quote packets) takes the aggregator's market clock: the
  newest exchange time it has seen, including this frame's. Before any stamped tick there is no
  market time, and unstamped ticks make no bar (the host's receive time is not the exchange's: a
  replay or kitesim runs on another clock, and every later stamped tick would look late; such a
  first minute would be partial, so nothing stored is lost). The clock only moves forward.
* **Closing.** The bar of minute M closes once the clock reaches M + 60 s, at the end of the frame
  that moved it there (so a frame holding ticks on both sides of a minute applies them all first),
  or when ``close_before(now)`` is told the market has passed it (a quiet period, the close).
* **Late ticks.** A tick for the minute still open is applied even if it is older than ticks already
  applied (it may set the open, high or low; it sets the close only if no newer tick was applied). A
  tick for a minute already closed is counted in ``FrameBars.late`` and dropped.
* **Volume** is how far the tick raises the token's high-water mark of ``volume_traded`` (the day's
  cumulative volume) for the IST trading day. The first tick of a token never seen before sets the
  mark and contributes 0 (the trades before it belong to minutes this aggregator did not see). For a
  token seen on an earlier day, a new day's mark starts at 0: its first tick's cumulative figure is
  all that day's trades so far. A decrease contributes 0, never negative volume, and does not lower the mark: a copy of
  the token from another connection of the same account, or a late tick, arriving after a newer
  one carries an older cumulative figure, and re-basing on it would count the same trades twice. (An
  intra-day reset by the exchange, which Kite is not known to send, would count nothing until the
  figure passes its old mark; settlement against Kite's candles corrects such a bar.) Packets that
  carry no volume (``ltp`` mode, indexes) contribute nothing; index bars have volume 0.
* **OI** is the last open interest seen for the token (full-mode packets carry it), kept across
  bars: a bar with no full-mode tick reports the OI known when it closed.
* **Partial bars.** The first minute in which the aggregator sees a token began before it was
  watching: ``partial`` is True on that bar (the writer leaves it to Kite's candles).
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ticks.bars.intervals import MINUTE
from ticks.bars.records import BarRecord
from ticks.bars.token_state import (
    BAR_DTYPE,
    BAR_SECONDS,
    NO_BAR,
    BarArray,
    Columns,
    IntArray,
    Layout,
    Runs,
    TokenState,
    member,
    merge_into,
    merge_ticks,
    open_from,
    remember,
)
from ticks.feeds.protocol import SEGMENT_INDICES

_LAYOUTS_KEPT: Final = 16  # a few connections' token lists, and a plan change's


@dataclass(frozen=True, slots=True)
class FrameBars:
    closed: BarArray  # BAR_DTYPE rows of the bars this frame closed
    forming: BarArray  # the open bar of every token this frame touched, after it
    late: int  # ticks for a minute already closed: dropped


def bar_records(bars: BarArray) -> list[BarRecord]:
    """BAR_DTYPE rows as the writer's BarRecords (interval "minute", source "live")."""
    columns = [bars[name].tolist() for name in ("instrument_token", "start", "open", "high", "low", "close")]
    volume, oi, ticks = bars["volume"].tolist(), bars["oi"].tolist(), bars["ticks"].tolist()
    return [
        BarRecord(token, MINUTE, float(start), o, h, low, c, v, i, n)
        for token, start, o, h, low, c, v, i, n in zip(*columns, volume, oi, ticks, strict=True)
    ]


class MinuteBars:
    """1-minute bars of one account's feed; see the module docstring for the rules."""

    def __init__(self, *, fast_path: bool = True) -> None:
        self._fast_path = fast_path  # False: every frame takes the general path (tests compare both)
        self._state = TokenState()
        self._layouts: dict[bytes, Layout] = {}  # by the frame's token list
        self._last_layout: tuple[IntArray, Layout] | None = None  # the previous frame's token list
        self.clock = 0  # the market clock: newest exchange time seen (or given to close_before)

    @property
    def open_minute(self) -> int:
        """The minute whose bars are still open (every open bar is in it); -1 before any tick."""
        return self.clock // BAR_SECONDS * BAR_SECONDS if self.clock > 0 else NO_BAR

    def update(self, ticks: npt.NDArray[np.void], primary: IntArray) -> FrameBars:
        """Apply one frame's ticks of ``primary`` tokens (a sorted int64 array)."""
        open_minute = self.open_minute
        stamps = ticks["exchange_timestamp"]
        if ticks.size:  # every tick of the feed tells the time, primary or not
            self.clock = max(self.clock, int(stamps.max()))
        if self.clock == 0:  # no exchange time yet: these unstamped ticks have no minute to go in
            return FrameBars(np.empty(0, BAR_DTYPE), np.empty(0, BAR_DTYPE), 0)
        layout = self._layout(ticks["instrument_token"], primary)
        keep, slots = layout.keep, layout.slots
        stamped = stamps[keep]
        at = np.where(stamped > 0, stamped, self.clock)
        if (
            self._fast_path
            and layout.once
            and keep.size
            and open_minute == self.open_minute != NO_BAR
            and at.min() >= open_minute
        ):
            # The usual frame: each token once, every tick in the open minute, which stays open.
            forming = merge_ticks(self._state, ticks, layout, at, open_minute)
            return FrameBars(np.empty(0, BAR_DTYPE), forming, 0)
        minute = at // BAR_SECONDS * BAR_SECONDS
        timely = minute >= open_minute
        late = int(keep.size - np.count_nonzero(timely))
        if late:
            keep, slots, at, minute = keep[timely], slots[timely], at[timely], minute[timely]
        if keep.size == 0:
            return FrameBars(self._close_open_before(self.open_minute), np.empty(0, BAR_DTYPE), late)
        if not layout.once:
            order = np.lexsort((at, minute, slots))  # stable: equal times keep arrival order
            keep, slots, at, minute = keep[order], slots[order], at[order], minute[order]
        runs = Runs.of(Columns.of(ticks, keep), slots, at, minute, self._state)
        closed = self._apply(runs, open_minute)
        touched = runs.slot[np.append(runs.slot[1:] != runs.slot[:-1], True)]
        touched = touched[self._state.ints["start"][touched] != NO_BAR]  # not closed at the frame's end
        return FrameBars(closed, self._state.bars(touched), late)

    def _layout(self, tokens: IntArray, primary: IntArray) -> "Layout":
        """The frame's primary rows and their slots, sorted by slot when every token appears once
        (then the order does not depend on times). Each connection's frames usually list the same
        tokens in the same order, so the layout is remembered per token list, until the primaries
        or the slots change; a frame listing the same tokens as the frame before skips even the
        hashing of its token list."""
        last = self._last_layout
        if last is not None and self._usable(last[1], primary) and np.array_equal(tokens, last[0]):
            return last[1]
        key = tokens.tobytes()
        layout = self._layouts.get(key)
        if layout is None or not self._usable(layout, primary):
            layout = self._layout_of(tokens, primary)
            if len(self._layouts) >= _LAYOUTS_KEPT:
                self._layouts.clear()
            self._layouts[key] = layout
        self._last_layout = (tokens.copy(), layout)
        return layout

    def _usable(self, layout: Layout, primary: IntArray) -> bool:
        return layout.primary is primary and layout.state_size == self._state.tokens.size

    def _layout_of(self, tokens: IntArray, primary: IntArray) -> Layout:
        keep = np.flatnonzero(member(tokens, primary))
        slots = self._state.slots(tokens[keep])
        order = np.argsort(slots, kind="stable")
        ordered = slots[order]
        once = bool((ordered[1:] != ordered[:-1]).all())
        if once:
            keep, slots = keep[order], ordered
        index = (tokens[keep] & 0xFF) == SEGMENT_INDICES
        window: npt.NDArray[np.intp] | slice = slots
        if once and slots.size and slots[-1] - slots[0] + 1 == slots.size:
            window = slice(int(slots[0]), int(slots[-1]) + 1)
        return Layout(primary, self._state.tokens.size, keep, slots, once, index, window)

    def close_before(self, now: float) -> BarArray:
        """Close every open bar whose minute ended at or before ``now`` (market time), and move the
        clock there, so ticks for those minutes that arrive afterwards are late."""
        self.clock = max(self.clock, int(now))
        return self._close_open_before(self.open_minute)

    def forming(self) -> BarArray:
        """Every open bar."""
        return self._state.bars(np.flatnonzero(self._state.ints["start"] != NO_BAR))

    def _close_open_before(self, minute: int) -> BarArray:
        start = self._state.ints["start"]
        closing = np.flatnonzero((start != NO_BAR) & (start < minute))
        bars = self._state.bars(closing)
        start[closing] = NO_BAR
        return bars

    def _apply(self, runs: "Runs", open_minute: int) -> BarArray:
        """Merge the runs of the open minute into the open bars; the newest run of each slot becomes
        its open bar; every bar before the new open minute comes out closed."""
        state = self._state
        current = runs.minute == open_minute
        merge_into(state, runs, np.flatnonzero(current))
        new_minute = self.open_minute
        later = np.flatnonzero(~current)
        replaced = np.unique(runs.slot[later])  # slots whose open bar a newer minute follows
        closed = [self._close_slots(replaced), runs.bars(later[runs.minute[later] < new_minute], state)]
        newest = later[runs.minute[later] == new_minute]  # at most one per slot
        open_from(state, runs, newest)
        closed.append(self._close_open_before(new_minute))
        remember(state, runs)
        return np.concatenate(closed)

    def _close_slots(self, slots: npt.NDArray[np.intp]) -> BarArray:
        start = self._state.ints["start"]
        slots = slots[start[slots] != NO_BAR]
        bars = self._state.bars(slots)
        start[slots] = NO_BAR
        return bars
