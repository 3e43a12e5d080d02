"""Kite's higher intervals from 1-minute bars, with pandas (pure: no Django, no clock).

Alignment is Kite's: intraday buckets sit on a grid anchored at the 09:15 IST session open, so
15-minute bars start 09:15, 09:30, ... and 60-minute bars 09:15, 10:15, ..., 15:15 (the last bar of
the day covers 15:15-15:29, a short bar). A day holds 1,440 minutes, a multiple of every intraday
interval, so one fixed origin gives the same grid every day and a bucket never spans two days. A bucket
takes whatever minutes were stored in it (a gap shortens it; a bucket with none is no bar). Day bars
are stamped 00:00 IST of their trading day, as Kite stamps them. OHLC is first/max/min/last, volume the
sum, OI the last minute's.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ticks.bars.intervals import DAY, INTERVAL_MINUTES, MINUTE
from ticks.market_time import IST, MARKET_OPEN

COLUMNS: Final = ("open", "high", "low", "close", "volume", "oi")
AGGREGATION: Final = {
    "open": "first",
    "high": "max",
    "low": "min",
    "close": "last",
    "volume": "sum",
    "oi": "last",
}
# Any 09:15 IST serves: the grid repeats every day (see the module docstring).
SESSION_ORIGIN: Final = pd.Timestamp("2000-01-03 09:15", tz=IST)

Starts = npt.ArrayLike | Sequence[datetime]


def bars_frame(
    start: Starts,
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    oi: npt.ArrayLike,
) -> pd.DataFrame:
    """Bars as a frame indexed by their start in IST, sorted; ``start`` is epoch seconds or aware times."""
    starts = np.asarray(start)
    if starts.dtype.kind in "iuf":
        index = pd.to_datetime(starts.astype("float64") * 1e9, utc=True).as_unit("s")
    else:
        index = pd.DatetimeIndex(pd.to_datetime(list(starts), utc=True))
    frame = pd.DataFrame(
        {
            "open": np.asarray(open, dtype="float64"),
            "high": np.asarray(high, dtype="float64"),
            "low": np.asarray(low, dtype="float64"),
            "close": np.asarray(close, dtype="float64"),
            "volume": np.asarray(volume, dtype="int64"),
            "oi": np.asarray(oi, dtype="int64"),
        },
        index=index.tz_convert(IST).rename("start"),
    )
    return frame.sort_index(kind="stable")


def empty_frame() -> pd.DataFrame:
    return bars_frame([], [], [], [], [], [], [])


def bars_resample(minutes: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Bars of ``interval`` (Kite's name) from a :func:`bars_frame` of 1-minute bars; ``minute`` returns it as is."""
    if interval not in INTERVAL_MINUTES:
        raise ValueError(f"unknown interval {interval!r}")
    if interval == MINUTE:
        return minutes
    if minutes.empty:
        return empty_frame()
    ist = minutes.tz_convert(IST) if minutes.index.tz is not None else minutes.tz_localize(IST)
    if interval == DAY:
        # Calendar days of an IST index: bins start at 00:00 IST.
        bins = ist.resample("1D")
    else:
        bins = ist.resample(
            f"{INTERVAL_MINUTES[interval]}min", origin=SESSION_ORIGIN, closed="left", label="left"
        )
    bars = bins.agg(AGGREGATION).dropna(subset=["close"])  # a bin with no minutes is no bar
    return bars.astype({"volume": "int64", "oi": "int64"}).rename_axis("start")


def bars_prefer(resampled: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Resampled bars, plus stored bars of the same interval at starts no minute bar reached.

    Stored bars of a higher interval come from a Kite backfill (e.g. day bars older than minute
    retention); where minutes exist, the bar built from them is the one consistent with the minutes.
    """
    if stored.empty:
        return resampled
    extra = stored[~stored.index.isin(resampled.index)]
    if extra.empty:
        return resampled
    return pd.concat([resampled, extra.tz_convert(IST)]).sort_index(kind="stable")


@dataclass(frozen=True, slots=True)
class BarWindow:
    """The bars a request for [start, end] returns, and the minutes they are built from."""

    first: datetime  # the earliest bar start returned
    last: datetime  # the latest bar start returned (inclusive)
    minutes_from: datetime  # 1-minute bars read: minutes_from <= start < minutes_until
    minutes_until: datetime


def bar_window(interval: str, start: datetime, end: datetime) -> BarWindow:
    """Kite's window: intraday bars starting in [start, end], each whole (it may end after ``end``).

    Day bars: every IST day from ``start``'s day to ``end``'s, the last one only if ``end`` is at or
    after its 09:15 session open (Kite's rule, as kitesim serves it). Aware datetimes in, IST out.
    """
    if interval not in INTERVAL_MINUTES:
        raise ValueError(f"unknown interval {interval!r}")
    start, end = start.astimezone(IST), end.astimezone(IST)
    if interval != DAY:
        step = timedelta(minutes=INTERVAL_MINUTES[interval])
        return BarWindow(start, end, start, end + step)
    first = datetime.combine(start.date(), datetime.min.time(), tzinfo=IST)
    last = datetime.combine(end.date(), datetime.min.time(), tzinfo=IST)
    if end.time() < MARKET_OPEN:
        last -= timedelta(days=1)
    return BarWindow(first, last, first, last + timedelta(days=1))


def bars_in_window(bars: pd.DataFrame, window: BarWindow) -> pd.DataFrame:
    return bars.loc[pd.Timestamp(window.first) : pd.Timestamp(window.last)]
