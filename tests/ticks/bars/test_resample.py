"""Resampling 1-minute bars to Kite's intervals: the 09:15 grid, short last bars, gaps, days, windows."""

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pytest

from ticks.bars.intervals import INTERVAL_MINUTES
from ticks.bars.resample import (
    COLUMNS,
    bar_window,
    bars_frame,
    bars_in_window,
    bars_prefer,
    bars_resample,
    empty_frame,
)
from ticks.market_time import IST

SESSION_MINUTES = 375  # 09:15 to 15:29
INTRADAY = [name for name, minutes in INTERVAL_MINUTES.items() if minutes > 1]


def _open(day: date) -> float:
    return datetime.combine(day, time(9, 15), tzinfo=IST).timestamp()


def _session(day: date, seed: int = 0, skip: slice | None = None) -> pd.DataFrame:
    """A day of 1-minute bars on a random walk (every minute unless ``skip`` removes some)."""
    rng = np.random.default_rng(seed)
    starts = _open(day) + 60.0 * np.arange(SESSION_MINUTES)
    close = 100 + np.cumsum(rng.normal(0, 0.5, SESSION_MINUTES))
    opens = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(opens, close) + rng.uniform(0, 0.3, SESSION_MINUTES)
    low = np.minimum(opens, close) - rng.uniform(0, 0.3, SESSION_MINUTES)
    volume = rng.integers(0, 5000, SESSION_MINUTES)
    oi = 1_000_000 + np.cumsum(rng.integers(-50, 60, SESSION_MINUTES))
    keep = np.ones(SESSION_MINUTES, dtype=bool)
    if skip is not None:
        keep[skip] = False
    return bars_frame(*(column[keep] for column in (starts, opens, high, low, close, volume, oi)))


def _blocks(minutes: pd.DataFrame, size: int) -> list[tuple[float, ...]]:
    """The reference: consecutive blocks of ``size`` rows of a gapless session, aggregated by hand."""
    rows = minutes.to_numpy()
    out = []
    for first in range(0, len(rows), size):
        block = rows[first : first + size]
        out.append(
            (block[0, 0], block[:, 1].max(), block[:, 2].min(), block[-1, 3], block[:, 4].sum(), block[-1, 5])
        )
    return out


def _values(bars: pd.DataFrame) -> list[tuple[float, ...]]:
    return [tuple(row) for row in bars[list(COLUMNS)].to_numpy()]


def _clock(bars: pd.DataFrame) -> list[str]:
    return [f"{start:%H:%M}" for start in bars.index]


DAY = date(2026, 3, 12)  # a Thursday


@pytest.mark.parametrize("interval", INTRADAY)
def test_a_full_session_is_cut_on_the_0915_grid(interval: str) -> None:
    size = INTERVAL_MINUTES[interval]
    minutes = _session(DAY)

    bars = bars_resample(minutes, interval)

    assert len(bars) == -(-SESSION_MINUTES // size)
    first = datetime.combine(DAY, time(9, 15), tzinfo=IST)
    assert list(bars.index) == [first + timedelta(minutes=size * k) for k in range(len(bars))]
    assert _values(bars) == _values(pd.DataFrame(_blocks(minutes, size), columns=list(COLUMNS)))
    assert bars["volume"].sum() == minutes["volume"].sum()


def test_fifteen_minute_bars_start_0915_0930_and_the_last_is_1515() -> None:
    bars = bars_resample(_session(DAY), "15minute")

    assert _clock(bars)[:3] == ["09:15", "09:30", "09:45"]
    assert _clock(bars)[-1] == "15:15"


def test_sixty_minute_bars_start_at_quarter_past_and_the_last_is_short() -> None:
    minutes = _session(DAY)

    bars = bars_resample(minutes, "60minute")

    assert _clock(bars) == ["09:15", "10:15", "11:15", "12:15", "13:15", "14:15", "15:15"]
    last = minutes.loc[pd.Timestamp(datetime.combine(DAY, time(15, 15), tzinfo=IST)) :]
    assert len(last) == 15
    assert bars.iloc[-1]["volume"] == last["volume"].sum()
    assert bars.iloc[-1]["open"] == last["open"].iloc[0]
    assert bars.iloc[-1]["close"] == last["close"].iloc[-1] == minutes["close"].iloc[-1]
    assert bars.iloc[-1]["oi"] == minutes["oi"].iloc[-1]


def test_a_bucket_takes_only_the_minutes_stored_in_it_and_an_empty_one_is_no_bar() -> None:
    # 09:20-09:34 missing (the 09:15 bar keeps 09:15-09:19, the 09:30 bar 09:35-09:44); 10:00-10:14 all gone
    minutes = _session(DAY, skip=np.r_[5:20, 45:60])

    bars = bars_resample(minutes, "15minute")

    assert _clock(bars)[:5] == ["09:15", "09:30", "09:45", "10:15", "10:30"]
    first, second = bars.iloc[0], bars.iloc[1]
    assert first["volume"] == minutes.iloc[0:5]["volume"].sum()
    assert (first["open"], first["close"]) == (minutes.iloc[0]["open"], minutes.iloc[4]["close"])
    assert second["open"] == minutes.iloc[5]["open"]  # the 09:35 minute
    assert second["high"] == minutes.iloc[5:15]["high"].max()
    assert second["oi"] == minutes.iloc[14]["oi"]


def test_a_gap_never_shifts_the_grid() -> None:
    minutes = _session(DAY, skip=np.r_[0:7])  # the market data starts at 09:22

    bars = bars_resample(minutes, "5minute")

    assert _clock(bars)[:2] == ["09:20", "09:25"]
    assert bars.iloc[0]["open"] == minutes.iloc[0]["open"]  # 09:22, in the 09:20 bar
    assert bars.iloc[0]["volume"] == minutes.iloc[0:3]["volume"].sum()


def test_several_days_never_share_a_bar_and_each_restarts_at_0915() -> None:
    friday, monday = date(2026, 3, 13), date(2026, 3, 16)
    minutes = pd.concat([_session(friday, seed=1), _session(monday, seed=2)])

    for interval in INTRADAY:
        size = INTERVAL_MINUTES[interval]
        bars = bars_resample(minutes, interval)
        per_day = -(-SESSION_MINUTES // size)
        assert len(bars) == 2 * per_day
        assert {start.date() for start in bars.index[:per_day]} == {friday}
        assert bars.index[per_day] == pd.Timestamp(datetime.combine(monday, time(9, 15), tzinfo=IST))
        assert _values(bars.iloc[per_day:]) == [
            tuple(row) for row in _blocks(minutes.loc[minutes.index.date == monday], size)
        ]


def test_day_bars_are_stamped_at_ist_midnight_across_a_year_end() -> None:
    last, first = date(2025, 12, 31), date(2026, 1, 1)
    minutes = pd.concat([_session(last, seed=3), _session(first, seed=4)])

    bars = bars_resample(minutes, "day")

    assert list(bars.index) == [
        pd.Timestamp(datetime.combine(day, time(0, 0), tzinfo=IST)) for day in (last, first)
    ]
    assert bars.index[0].tz_convert(UTC) == pd.Timestamp("2025-12-30 18:30", tz=UTC)
    for (_, bar), day in zip(bars.iterrows(), (last, first), strict=True):
        session = minutes.loc[minutes.index.date == day]
        assert bar["open"] == session["open"].iloc[0]
        assert bar["high"] == session["high"].max()
        assert bar["low"] == session["low"].min()
        assert bar["close"] == session["close"].iloc[-1]
        assert bar["volume"] == session["volume"].sum()
        assert bar["oi"] == session["oi"].iloc[-1]


def test_an_index_without_volume_or_oi_keeps_zeros_as_integers() -> None:
    minutes = _session(DAY)
    minutes[["volume", "oi"]] = 0

    bars = bars_resample(minutes, "30minute")

    assert (bars["volume"] == 0).all() and (bars["oi"] == 0).all()
    assert bars["volume"].dtype == np.int64 and bars["oi"].dtype == np.int64


def test_minute_passes_through_and_an_unknown_interval_is_refused() -> None:
    minutes = _session(DAY)

    assert bars_resample(minutes, "minute") is minutes
    with pytest.raises(ValueError, match="2minute"):
        bars_resample(minutes, "2minute")


@pytest.mark.parametrize("interval", list(INTERVAL_MINUTES))
def test_no_minutes_give_no_bars(interval: str) -> None:
    bars = bars_resample(empty_frame(), interval)

    assert bars.empty
    assert list(bars.columns) == list(COLUMNS)


def test_the_frame_sorts_and_takes_epoch_seconds_or_aware_datetimes_alike() -> None:
    starts = [_open(DAY) + 120, _open(DAY), _open(DAY) + 60]
    columns = ([3.0, 1.0, 2.0], [3.5, 1.5, 2.5], [2.5, 0.5, 1.5], [3.2, 1.2, 2.2], [30, 10, 20], [3, 1, 2])

    by_epoch = bars_frame(starts, *columns)
    by_datetime = bars_frame([datetime.fromtimestamp(s, UTC) for s in starts], *columns)

    assert list(by_epoch["open"]) == [1.0, 2.0, 3.0]
    assert by_epoch.index.equals(by_datetime.index)
    assert str(by_epoch.index.tz) == "IST"
    assert _values(by_epoch) == _values(by_datetime)
    assert _values(bars_resample(by_epoch, "3minute")) == [(1.0, 3.5, 0.5, 3.2, 60, 3)]


def test_stored_bars_fill_only_buckets_without_minutes() -> None:
    minutes = _session(DAY, skip=np.r_[0:60])  # nothing before 10:15
    resampled = bars_resample(minutes, "60minute")
    opens = [datetime.combine(DAY, time(hour, 15), tzinfo=IST).timestamp() for hour in (9, 10)]
    stored = bars_frame(opens, [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [7, 8], [0, 0])

    bars = bars_prefer(resampled, stored)

    assert _clock(bars)[:2] == ["09:15", "10:15"]
    assert bars.iloc[0]["open"] == 1.0  # the stored 09:15 bar: no minute under it
    assert bars.iloc[1]["open"] == resampled.iloc[0]["open"] != 2.0  # minutes win at 10:15
    assert len(bars) == len(resampled) + 1
    assert bars_prefer(resampled, empty_frame()) is resampled


def _ist(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=IST)


def test_an_intraday_window_returns_starts_in_range_each_bar_whole() -> None:
    window = bar_window("15minute", _ist(DAY, 9, 20), _ist(DAY, 10, 5))
    bars = bars_in_window(bars_resample(_session(DAY), "15minute"), window)

    assert (window.minutes_from, window.minutes_until) == (_ist(DAY, 9, 20), _ist(DAY, 10, 20))
    assert _clock(bars) == ["09:30", "09:45", "10:00"]  # 09:15 starts before `from`


def test_the_window_reads_utc_input_as_the_same_instant() -> None:
    window = bar_window("minute", _ist(DAY, 9, 15).astimezone(UTC), _ist(DAY, 9, 17).astimezone(UTC))

    assert window.first == _ist(DAY, 9, 15) and window.first.utcoffset() == timedelta(hours=5, minutes=30)
    assert window.minutes_until == _ist(DAY, 9, 18)


def test_a_day_window_takes_whole_days_and_the_last_only_once_it_has_opened() -> None:
    after_close = bar_window("day", _ist(DAY, 15, 0), _ist(DAY + timedelta(days=1), 9, 15))
    before_open = bar_window("day", _ist(DAY, 15, 0), _ist(DAY + timedelta(days=1), 9, 14, 59))

    assert after_close.first == _ist(DAY, 0, 0)
    assert after_close.last == _ist(DAY + timedelta(days=1), 0, 0)
    assert after_close.minutes_until == _ist(DAY + timedelta(days=2), 0, 0)
    assert before_open.last == _ist(DAY, 0, 0)
    with pytest.raises(ValueError, match="week"):
        bar_window("week", _ist(DAY, 0, 0), _ist(DAY, 1, 0))
