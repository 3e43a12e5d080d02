"""The pure 1-minute bar aggregator against a plain-Python, tick-by-tick reference of the same rules."""

from dataclasses import dataclass, field
from datetime import datetime
from unittest import mock

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticks.bars import aggregator
from ticks.bars.aggregator import BAR_DTYPE, MinuteBars, bar_records
from ticks.bars.records import BarRecord
from ticks.feeds.protocol import TICK_DTYPE
from ticks.market_time import IST

T0 = int(datetime(2026, 3, 2, 10, 0, tzinfo=IST).timestamp())  # a minute's first second
OPTION = 12_345_602  # NFO segment (low byte 2)
FUTURE = 9_001 << 8 | 2
INDEX = 256_265  # NSE indices segment (low byte 9)
COMPANION = 777 << 8 | 2  # a companion copy: not primary on this account
PRIMARY = np.array(sorted([OPTION, FUTURE, INDEX]), np.int64)

Tick = tuple[int, float, int, int, int, str]  # token, price, exchange time (0: none), volume, oi, mode


def frame(*ticks: Tick) -> npt.NDArray[np.void]:
    rows = np.zeros(len(ticks), TICK_DTYPE)
    for row, (token, price, at, volume, oi, mode) in zip(rows, ticks, strict=True):
        row["instrument_token"], row["last_price"], row["exchange_timestamp"] = token, price, at
        row["volume_traded"], row["oi"], row["mode"] = volume, oi, mode
    return rows


def bars_of(array: npt.NDArray[np.void]) -> list[tuple]:
    return sorted(tuple(row.item()) for row in array)


# --- the reference: one tick at a time, in the order the rules define --------------------------------


@dataclass
class RefBar:
    token: int
    start: int
    open: float
    high: float
    low: float
    close: float
    first_at: int
    last_at: int
    volume: int = 0
    ticks: int = 0
    partial: bool = False


@dataclass
class Reference:
    clock: int = 0
    bars: dict[int, RefBar] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)
    base: dict[int, tuple[int, int]] = field(default_factory=dict)  # token -> (high-water mark, IST day)
    oi: dict[int, int] = field(default_factory=dict)

    def row(self, bar: RefBar) -> tuple:
        return (bar.token, bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume,
                self.oi.get(bar.token, 0), bar.ticks, bar.partial)  # fmt: skip

    def update(self, ticks: list[Tick], primary: set[int]) -> tuple[list, list, int]:
        open_minute = self.clock // 60 * 60 if self.clock else -1
        self.clock = max([self.clock, *(t[2] for t in ticks)])
        mine = [t for t in ticks if t[0] in primary]
        if self.clock == 0:  # no exchange time yet: an unstamped tick has no minute
            return [], [], 0
        events, late = [], 0
        for arrival, tick in enumerate(mine):
            at = tick[2] or self.clock
            if at // 60 * 60 < open_minute:
                late += 1
            else:
                events.append((tick[0], at // 60 * 60, at, arrival, tick))
        closed, touched = [], set()
        for token, minute, at, _, tick in sorted(events):
            closed += self._apply(token, minute, at, tick)
            touched.add(token)
        closed += self._close_before(self.clock // 60 * 60)
        forming = [self.row(self.bars[t]) for t in touched if t in self.bars]
        return sorted(closed), sorted(forming), late

    def _apply(self, token: int, minute: int, at: int, tick: Tick) -> list[tuple]:
        _, price, _, volume, oi, mode = tick
        closed = []
        bar = self.bars.get(token)
        if bar is not None and bar.start != minute:
            closed.append(self.row(self.bars.pop(token)))
            bar = None
        if bar is None:
            bar = RefBar(token, minute, price, price, price, price, at, at, partial=token not in self.seen)
            self.bars[token] = bar
        else:
            if at < bar.first_at:
                bar.open, bar.first_at = price, at
            if at >= bar.last_at:
                bar.close, bar.last_at = price, at
            bar.high, bar.low = max(bar.high, price), min(bar.low, price)
        bar.ticks += 1
        fresh = at >= self.seen.get(token, -1)
        index = token & 0xFF == 9
        day = (at + 19_800) // 86_400
        mark, mark_day = self.base.get(token, (-1, -1))
        if mode != "ltp" and not index and day >= mark_day:
            if mark_day == day:  # the day's high-water mark only rises
                bar.volume += max(0, volume - mark)
                self.base[token] = (max(mark, volume), day)
            else:  # a new day: its cumulative volume starts from 0 for a token seen before
                bar.volume += volume if mark_day >= 0 else 0
                self.base[token] = (volume, day)
        if fresh and mode == "full" and not index:
            self.oi[token] = oi
        self.seen[token] = max(self.seen.get(token, -1), at)
        return closed

    def _close_before(self, minute: int) -> list[tuple]:
        ending = [t for t, bar in self.bars.items() if bar.start < minute]
        return [self.row(self.bars.pop(t)) for t in ending]

    def close_before(self, now: float) -> list[tuple]:
        self.clock = max(self.clock, int(now))
        return sorted(self._close_before(self.clock // 60 * 60))


# --- random tick streams ------------------------------------------------------------------------------

TOKENS = [OPTION, FUTURE, INDEX, COMPANION]


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Frames (and quiet-period closes) over a few minutes: times jitter back and forth, some ticks
    are unstamped, volume mostly grows but sometimes resets, a day boundary may pass."""
    now = T0 + draw(st.sampled_from([0, 30, 59, 86_400 - 19_800 - 90]))  # near an IST midnight too
    volume = dict.fromkeys(TOKENS, draw(st.integers(0, 1_000)))
    steps = []
    for _ in range(draw(st.integers(1, 25))):
        if draw(st.integers(0, 9)) == 0:
            now += draw(st.integers(0, 150))
            steps.append(("close", float(now)))
            continue
        ticks = []
        for _ in range(draw(st.integers(0, 12))):
            token = draw(st.sampled_from(TOKENS))
            now += draw(st.integers(0, 20))
            at = max(now - draw(st.sampled_from([0, 0, 0, 1, 5, 45, 70])), 1)
            mode = draw(st.sampled_from(["full", "full", "quote", "ltp"]))
            volume[token] = (
                draw(st.integers(0, 50))
                if draw(st.integers(0, 15)) == 0
                else volume[token] + draw(st.integers(0, 40))
            )
            stamped = at if mode == "full" else 0
            price = draw(st.integers(1, 400)) * 0.05
            oi = draw(st.integers(0, 5_000)) if mode == "full" else 0
            ticks.append((token, price, stamped, volume[token] if mode != "ltp" else 0, oi, mode))
        steps.append(("frame", ticks))
    return steps


@settings(max_examples=400, deadline=None)
@given(streams())
def test_random_streams_match_the_tick_by_tick_reference(steps: list[tuple[str, object]]) -> None:
    bars, reference = MinuteBars(), Reference()
    primary = {OPTION, FUTURE, INDEX}
    for kind, payload in steps:
        if kind == "close":
            assert bars_of(bars.close_before(payload)) == reference.close_before(payload)
            continue
        result = bars.update(frame(*payload), PRIMARY)
        closed, forming, late = reference.update(payload, primary)
        assert bars_of(result.closed) == closed
        assert bars_of(result.forming) == forming
        assert result.late == late
    assert bars_of(bars.forming()) == sorted(reference.row(bar) for bar in reference.bars.values())


# --- the fast path (each token once, every tick in the open minute) against the general path ----------

STEADY = [OPTION, FUTURE, INDEX, COMPANION, 5 << 8 | 2, 900 << 8 | 2]
STEADY_PRIMARY = np.array(sorted(set(STEADY) - {COMPANION}), np.int64)


@st.composite
def steady_streams(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Frames shaped like a live feed's: every token once, in any order, any subset (so the slots a
    frame touches may be consecutive or not); sometimes a duplicate, a tick 65 s late, a minute or an
    IST day passing, an ltp or quote packet, a volume reset, a quiet-period close."""
    now = T0 + draw(st.integers(0, 50)) + draw(st.sampled_from([0, 86_400 - 19_800 - 120]))
    volume = {token: draw(st.integers(0, 1_000)) for token in STEADY}
    steps: list[tuple[str, object]] = []
    for price, order in ((10.0, STEADY), (11.0, STEADY[::-1])):  # opens every bar, then the fast path
        # The first packet is stamped, so the clock is ``now`` and the second frame's minute still open.
        modes = ["full", *(draw(st.sampled_from(["full", "quote", "ltp"])) for _ in order[1:])]
        steps.append(
            (
                "frame",
                [
                    _tick(token, price, now, volume[token] + 5, 2, mode)
                    for token, mode in zip(order, modes, strict=True)
                ],
            )
        )
    for _ in range(draw(st.integers(0, 30))):
        if draw(st.integers(0, 14)) == 0:
            now += draw(st.integers(0, 90))
            steps.append(("close", float(now)))
            continue
        tokens = draw(st.lists(st.sampled_from(STEADY), max_size=len(STEADY), unique=True))
        if tokens and draw(st.integers(0, 9)) == 0:
            tokens.append(tokens[0])
        now += draw(st.sampled_from([0, 0, 1, 1, 2, 7, 25]))
        ticks = []
        for token in tokens:
            at = max(now - draw(st.sampled_from([0, 0, 0, 1, 3, 65])), 1)
            mode = draw(st.sampled_from(["full", "full", "full", "quote", "ltp"]))
            volume[token] = (
                draw(st.integers(0, 50))
                if draw(st.integers(0, 20)) == 0
                else volume[token] + draw(st.integers(0, 40))
            )
            oi = draw(st.integers(0, 5_000))
            ticks.append(_tick(token, draw(st.integers(1, 400)) * 0.05, at, volume[token], oi, mode))
        steps.append(("frame", ticks))
    return steps


def _tick(token: int, price: float, at: int, volume: int, oi: int, mode: str) -> Tick:
    """What a packet of ``mode`` carries: ltp packets no volume, only full packets a time and OI."""
    full = mode == "full"
    return (token, price, at if full else 0, volume if mode != "ltp" else 0, oi if full else 0, mode)


@settings(max_examples=300, deadline=None)
@given(steady_streams())
def test_the_fast_path_equals_the_general_path_and_the_reference(steps: list[tuple[str, object]]) -> None:
    fast, general, reference = MinuteBars(), MinuteBars(fast_path=False), Reference()
    primary = set(STEADY_PRIMARY.tolist())
    with mock.patch.object(aggregator, "merge_ticks", wraps=aggregator.merge_ticks) as merge_ticks:
        for kind, payload in steps:
            if kind == "close":
                closed = fast.close_before(payload)
                assert closed.tolist() == general.close_before(payload).tolist()
                assert bars_of(closed) == reference.close_before(payload)
                continue
            ticks = frame(*payload)
            result, expected = (
                fast.update(ticks, STEADY_PRIMARY),
                general.update(ticks, STEADY_PRIMARY),
            )
            assert result.closed.tolist() == expected.closed.tolist()
            assert result.forming.tolist() == expected.forming.tolist()  # the same order too
            assert result.late == expected.late
            closed, forming, late = reference.update(payload, primary)
            assert (bars_of(result.closed), bars_of(result.forming), result.late) == (closed, forming, late)
    assert merge_ticks.call_count >= 1  # the second frame at least took the fast path
    assert fast.forming().tolist() == general.forming().tolist()


def test_frames_of_two_connections_take_the_fast_path_on_their_own_slots() -> None:
    """Two connections' frames alternate: neither touches consecutive slots, both stay exact."""
    fast, general = MinuteBars(), MinuteBars(fast_path=False)
    first, second = [OPTION, INDEX], [5 << 8 | 2, FUTURE, 900 << 8 | 2]
    with mock.patch.object(aggregator, "merge_ticks", wraps=aggregator.merge_ticks) as merge_ticks:
        for second_of_minute in range(0, 60, 3):
            for tokens in (first, second):
                ticks = frame(
                    *((token, 100.0 + second_of_minute % 7, T0 + second_of_minute, 10 * second_of_minute, 1, "full")
                      for token in tokens)
                )  # fmt: skip
                result, expected = (
                    fast.update(ticks, STEADY_PRIMARY),
                    general.update(ticks, STEADY_PRIMARY),
                )
                assert result.forming.tolist() == expected.forming.tolist()
    assert merge_ticks.call_count == 2 * 20 - 1  # all but the first frame (before it, no clock)
    rolled = frame((OPTION, 1.0, T0 + 60, 0, 0, "full"))
    assert (
        fast.update(rolled, STEADY_PRIMARY).closed.tolist()
        == general.update(rolled, STEADY_PRIMARY).closed.tolist()
    )


# --- the rules, one at a time -------------------------------------------------------------------------


def test_ohlc_volume_oi_and_ticks_of_one_minute() -> None:
    bars = MinuteBars()
    bars.update(frame((OPTION, 10.0, T0 + 1, 100, 7, "full")), PRIMARY)
    bars.update(
        frame((OPTION, 12.0, T0 + 20, 130, 8, "full"), (OPTION, 9.0, T0 + 30, 150, 9, "full")), PRIMARY
    )
    bars.update(frame((OPTION, 11.0, T0 + 59, 151, 9, "full")), PRIMARY)

    result = bars.update(frame((OPTION, 11.5, T0 + 60, 160, 9, "full")), PRIMARY)

    (bar,) = bar_records(result.closed)
    assert bar == BarRecord(OPTION, "minute", float(T0), 10.0, 12.0, 9.0, 11.0, volume=51, oi=9, ticks=4)
    assert result.closed["partial"].tolist() == [True]  # the first minute seen: its start was missed
    (forming,) = result.forming.tolist()
    assert forming == (OPTION, T0 + 60, 11.5, 11.5, 11.5, 11.5, 9, 9, 1, False)


def test_a_late_tick_inside_the_open_minute_is_applied_and_one_for_a_closed_minute_dropped() -> None:
    bars = MinuteBars()
    bars.update(frame((OPTION, 10.0, T0 + 10, 100, 0, "full")), PRIMARY)
    bars.update(frame((OPTION, 11.0, T0 + 40, 110, 0, "full")), PRIMARY)

    inside = bars.update(frame((OPTION, 7.0, T0 + 5, 95, 0, "full")), PRIMARY)  # older, same minute
    bars.update(frame((FUTURE, 1.0, T0 + 61, 0, 0, "full")), PRIMARY)  # the clock passes the minute
    after = bars.update(frame((OPTION, 30.0, T0 + 50, 120, 0, "full")), PRIMARY)

    assert inside.late == 0
    assert inside.forming[["open", "high", "low", "close", "volume", "ticks"]].tolist() == [
        (7.0, 11.0, 7.0, 11.0, 10, 3)  # a stale cumulative volume neither counts nor re-bases
    ]
    assert after.late == 1 and after.closed.size == 0 and after.forming.size == 0


def test_a_frame_spanning_two_minutes_applies_both_sides_then_closes_the_first() -> None:
    bars = MinuteBars()
    bars.update(frame((OPTION, 10.0, T0 + 30, 100, 0, "full")), PRIMARY)

    result = bars.update(
        frame(
            (OPTION, 12.0, T0 + 61, 140, 0, "full"),  # arrives first, belongs to the next minute
            (OPTION, 11.0, T0 + 59, 120, 0, "full"),
            (INDEX, 500.0, T0 + 59, 0, 0, "full"),
        ),
        PRIMARY,
    )

    closed = {row["instrument_token"]: row for row in result.closed}
    assert closed[OPTION][["open", "high", "close", "volume", "ticks"]].tolist() == (10.0, 11.0, 11.0, 20, 2)
    assert closed[INDEX]["close"] == 500.0  # its minute ended with the frame
    assert result.forming[["instrument_token", "start", "open", "volume"]].tolist() == [
        (OPTION, T0 + 60, 12.0, 20)
    ]


def test_a_volume_decrease_never_goes_negative_nor_counts_twice() -> None:
    bars = MinuteBars()
    bars.update(frame((FUTURE, 1.0, T0 + 1, 5_000, 0, "quote")), PRIMARY)
    bars.update(frame((FUTURE, 1.0, T0 + 2, 5_100, 0, "quote")), PRIMARY)
    bars.update(frame((FUTURE, 1.0, T0 + 2, 5_050, 0, "quote")), PRIMARY)  # an older copy
    bars.update(frame((FUTURE, 1.0, T0 + 3, 40, 0, "quote")), PRIMARY)  # a reset

    result = bars.update(frame((FUTURE, 1.0, T0 + 4, 5_130, 0, "quote")), PRIMARY)

    assert result.forming["volume"].tolist() == [100 + 0 + 0 + 30]


def test_a_new_ist_day_counts_a_known_token_s_volume_from_zero() -> None:
    """volume_traded is the day's running total: on a new day all of it is that day's trades."""
    midnight = T0 - (T0 + 19_800) % 86_400 + 86_400  # the next 00:00 IST
    bars = MinuteBars()
    bars.update(frame((FUTURE, 1.0, midnight - 120, 9_000, 0, "quote")), PRIMARY)

    result = bars.update(frame((FUTURE, 1.0, midnight + 30, 9_500, 0, "full")), PRIMARY)
    after = bars.update(frame((FUTURE, 1.0, midnight + 40, 9_700, 0, "full")), PRIMARY)

    assert result.forming["volume"].tolist() == [9_500]
    assert after.forming["volume"].tolist() == [9_700]


def test_the_first_tick_of_a_token_never_seen_sets_its_base() -> None:
    bars = MinuteBars()

    result = bars.update(frame((FUTURE, 1.0, T0 + 5, 9_000, 0, "full")), PRIMARY)
    after = bars.update(frame((FUTURE, 1.0, T0 + 6, 9_040, 0, "full")), PRIMARY)

    assert result.forming[["volume", "partial"]].tolist() == [(0, True)]
    assert after.forming["volume"].tolist() == [40]


def test_an_index_has_no_volume_and_a_companion_copy_makes_no_bar() -> None:
    bars = MinuteBars()
    bars.update(frame((INDEX, 100.0, T0 + 1, 5, 3, "full"), (COMPANION, 5.0, T0 + 1, 10, 0, "full")), PRIMARY)

    result = bars.update(
        frame((INDEX, 101.0, T0 + 2, 50, 9, "full"), (COMPANION, 6.0, T0 + 2, 90, 0, "full")), PRIMARY
    )

    assert result.forming[["instrument_token", "volume", "oi", "ticks"]].tolist() == [(INDEX, 0, 0, 2)]
    assert bars.close_before(T0 + 60)["instrument_token"].tolist() == [INDEX]


def test_an_ltp_tick_takes_the_newest_exchange_time_and_before_any_makes_no_bar() -> None:
    bars = MinuteBars()
    first = bars.update(frame((OPTION, 5.0, 0, 0, 0, "ltp")), PRIMARY)  # no market time known yet
    bars.update(frame((FUTURE, 1.0, T0 + 10, 0, 0, "full")), PRIMARY)
    second = bars.update(frame((OPTION, 6.0, 0, 0, 0, "ltp")), PRIMARY)
    bars.update(frame((FUTURE, 1.0, T0 + 70, 0, 0, "full")), PRIMARY)  # the market moves on

    third = bars.update(frame((OPTION, 7.0, 0, 0, 0, "ltp")), PRIMARY)

    assert first.forming.size == 0 and first.closed.size == 0 and bars.clock == T0 + 70
    assert second.forming[["start", "open"]].tolist() == [(T0, 6.0)]
    assert third.forming[["start", "open", "volume"]].tolist() == [(T0 + 60, 7.0, 0)]


def test_a_quiet_period_ends_bars_and_later_ticks_for_them_are_late() -> None:
    bars = MinuteBars()
    bars.update(frame((OPTION, 5.0, T0 + 10, 1, 0, "full")), PRIMARY)

    assert bars.close_before(T0 + 59.9).size == 0
    closed = bars.close_before(T0 + 60)
    late = bars.update(frame((OPTION, 6.0, T0 + 50, 2, 0, "full")), PRIMARY)

    assert closed["start"].tolist() == [T0] and late.late == 1 and bars.forming().size == 0


def test_new_tokens_keep_the_state_of_known_ones() -> None:
    bars = MinuteBars()
    bars.update(frame((OPTION, 5.0, T0 + 1, 10, 0, "full")), PRIMARY)
    wider = np.array(sorted([*PRIMARY, 1, COMPANION, 10**9]), np.int64)

    result = bars.update(
        frame(
            (1, 2.0, T0 + 2, 0, 0, "full"),
            (COMPANION, 3.0, T0 + 2, 0, 0, "full"),
            (OPTION, 6.0, T0 + 3, 14, 0, "full"),
        ),
        wider,
    )

    assert bars_of(result.forming) == [
        (1, T0, 2.0, 2.0, 2.0, 2.0, 0, 0, 1, True),
        (COMPANION, T0, 3.0, 3.0, 3.0, 3.0, 0, 0, 1, True),
        (OPTION, T0, 5.0, 6.0, 5.0, 6.0, 4, 0, 2, True),
    ]


def test_an_empty_frame_or_no_primary_tokens_changes_nothing() -> None:
    bars = MinuteBars()
    assert bars.update(np.empty(0, TICK_DTYPE), PRIMARY).closed.dtype == BAR_DTYPE
    result = bars.update(frame((OPTION, 5.0, T0 + 1, 10, 0, "full")), np.empty(0, np.int64))
    assert result.forming.size == 0 and result.closed.size == 0 and bars.clock == T0 + 1


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_known_token_first_ticking_later_on_a_new_day_counts_from_zero(fast_path: bool) -> None:
    """Its first tick of the day comes in a frame that leaves the open minute open: the fast path."""
    midnight = T0 - (T0 + 19_800) % 86_400 + 86_400
    bars = MinuteBars(fast_path=fast_path)
    bars.update(
        frame((OPTION, 5.0, midnight - 90, 100, 0, "full"), (FUTURE, 1.0, midnight - 90, 7, 0, "full")),
        PRIMARY,
    )
    bars.update(frame((FUTURE, 1.0, midnight + 5, 9, 0, "full")), PRIMARY)  # the new day's minute opens

    result = bars.update(frame((OPTION, 6.0, midnight + 20, 40, 0, "full")), PRIMARY)

    assert result.forming[["instrument_token", "volume"]].tolist() == [(OPTION, 40)]
