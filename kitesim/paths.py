"""Underlying price paths, one trading session at a time: the recorded NIFTY minutes or a seeded GBM.

A session path is a set of (epoch, level) knots, linearly interpolated, so a level is a pure
function of (seed, time). BANKNIFTY and SENSEX follow NIFTY by a fixed ratio times a small smooth
noise of their own.
"""

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol, overload

import numpy as np

from kitesim.clock import IST
from kitesim.pricing import uniform01
from kitesim.universe import NIFTY_REFERENCE_LEVEL, UNDERLYINGS, next_trading_day
from ticks.exchange_calendar import market_calendar

SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)
SESSION_SECONDS = 22_500.0
NIFTY_CSV = Path(__file__).parent / "data" / "nifty50-1minute-2025-09-04_10.csv"
# Within a minute bar: open at :00, the nearer extreme at :15, the other at :35, the close at :55.
BAR_KNOT_OFFSETS = (0.0, 15.0, 35.0, 55.0)
GBM_ANNUAL_VOL = 0.13
TRADING_SECONDS_PER_YEAR = 252 * SESSION_SECONDS
DERIVED_NOISE_AMPLITUDE = 0.0008


def session_open_epoch(day: date) -> float:
    return datetime.combine(day, SESSION_OPEN, tzinfo=IST).timestamp()


def session_close_epoch(day: date) -> float:
    return datetime.combine(day, SESSION_CLOSE, tzinfo=IST).timestamp()


def session_day(epoch: float) -> date:
    """The session ``epoch`` belongs to: today's until 15:30 IST, then the next trading day's (over
    weekends and exchange holidays)."""
    moment = datetime.fromtimestamp(epoch, tz=IST)
    day = moment.date()
    if moment.time() >= SESSION_CLOSE:
        day += timedelta(days=1)
    return next_trading_day(day)


def previous_trading_day(day: date) -> date:
    """The last trading day (exchange calendar session) strictly before ``day``."""
    return market_calendar().previous_session(day)


def trading_days_between(first: date, last: date) -> int:
    """Signed count of trading days from ``first`` to ``last`` (0 when equal; holidays do not count)."""
    return market_calendar().sessions_between(first, last)


@dataclass(frozen=True, slots=True)
class SessionPath:
    day: date
    times: np.ndarray
    levels: np.ndarray
    prev_close: float

    def at(self, epochs: np.ndarray | float) -> np.ndarray:
        return np.interp(epochs, self.times, self.levels)

    @property
    def open(self) -> float:
        return float(self.levels[0])


class NiftyPath(Protocol):
    def session(self, day: date) -> SessionPath: ...


def _bar_knots(o: float, h: float, low: float, c: float) -> tuple[float, float, float, float]:
    first, second = (low, h) if abs(o - low) <= abs(o - h) else (h, low)
    return o, first, second, c


class NiftyReplay:
    """The recorded NIFTY sessions, cycled: trading day k plays recorded session k mod 5."""

    def __init__(self, csv_path: Path = NIFTY_CSV) -> None:
        sessions: dict[date, list[tuple[float, float, float, float]]] = {}
        with Path(csv_path).open(newline="") as handle:
            for row in csv.DictReader(handle):
                day = datetime.fromisoformat(row["date"]).date()
                bar = (float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"]))
                sessions.setdefault(day, []).append(bar)
        self.days = sorted(sessions)
        self._bars = [np.array([_bar_knots(*b) for b in sessions[d]]) for d in self.days]

    def recorded_index(self, day: date) -> int:
        return trading_days_between(self.days[0], day) % len(self.days)

    def session(self, day: date) -> SessionPath:
        index = self.recorded_index(day)
        knots = self._bars[index]
        minutes = np.arange(len(knots), dtype=float) * 60.0
        times = session_open_epoch(day) + (minutes[:, None] + np.array(BAR_KNOT_OFFSETS)).ravel()
        times = np.append(times, session_close_epoch(day))
        levels = np.append(knots.ravel(), knots[-1, -1])
        prev_close = float(self._bars[index - 1][-1, -1])
        return SessionPath(day, times, levels, prev_close)


class NiftyGbm:
    """A seeded geometric Brownian motion on a one-second grid; each session is drawn on its own."""

    def __init__(
        self, seed: int, level: float = NIFTY_REFERENCE_LEVEL, annual_vol: float = GBM_ANNUAL_VOL
    ) -> None:
        self.seed = seed
        self.level = level
        self.annual_vol = annual_vol

    def session(self, day: date) -> SessionPath:
        rng = np.random.default_rng([self.seed, day.toordinal()])
        prev_close = self.level * float(np.exp(0.01 * rng.standard_normal()))
        gap = float(np.exp(0.004 * rng.standard_normal()))
        step_vol = self.annual_vol / np.sqrt(TRADING_SECONDS_PER_YEAR)
        steps = rng.standard_normal(int(SESSION_SECONDS)) * step_vol - 0.5 * step_vol**2
        levels = prev_close * gap * np.exp(np.concatenate([[0.0], np.cumsum(steps)]))
        times = session_open_epoch(day) + np.arange(levels.size, dtype=float)
        return SessionPath(day, times, np.round(levels, 2), prev_close)


def _smooth_noise(seed: int, salt: int, day: date, epochs: np.ndarray) -> np.ndarray:
    """A sum of three slow sinusoids, at most ``DERIVED_NOISE_AMPLITUDE`` in log terms."""
    draws = uniform01(seed, salt, day.toordinal(), np.arange(9))
    periods = 300.0 + 3300.0 * draws[:3]
    phases = 2 * np.pi * draws[3:6]
    weights = -np.log1p(-draws[6:])  # normalised exponentials: a flat Dirichlet draw
    weights *= DERIVED_NOISE_AMPLITUDE / weights.sum()
    since_open = epochs - session_open_epoch(day)  # small arguments: sin of 1.8e9 is slow and imprecise
    waves = np.sin(2 * np.pi * since_open[:, None] / periods + phases)
    return waves @ weights


def derived_session(nifty: SessionPath, underlying: str, seed: int) -> SessionPath:
    """BANKNIFTY/SENSEX: NIFTY times the configured ratio times their own small noise."""
    spec = UNDERLYINGS[underlying]
    if spec.nifty_ratio == 1.0:
        return nifty
    noise = np.exp(_smooth_noise(seed, spec.code, nifty.day, nifty.times))
    levels = np.round(nifty.levels * spec.nifty_ratio * noise, 2)
    return SessionPath(nifty.day, nifty.times, levels, round(nifty.prev_close * spec.nifty_ratio, 2))


class SessionPaths(Sequence[SessionPath]):
    """One day's path per underlying, in ``UNDERLYINGS`` order, derived from NIFTY's only when asked."""

    def __init__(self, nifty_path: NiftyPath, day: date, seed: int) -> None:
        self._nifty = nifty_path.session(day)
        self._seed = seed
        self._derived: dict[int, SessionPath] = {}

    def __len__(self) -> int:
        return len(UNDERLYINGS)

    @overload
    def __getitem__(self, code: int) -> SessionPath: ...

    @overload
    def __getitem__(self, code: slice) -> list[SessionPath]: ...

    def __getitem__(self, code: int | slice) -> SessionPath | list[SessionPath]:
        if isinstance(code, slice):
            return [self[k] for k in range(len(self))[code]]
        if code not in self._derived:
            self._derived[code] = derived_session(self._nifty, list(UNDERLYINGS)[code], self._seed)
        return self._derived[code]


def sessions_for(nifty_path: NiftyPath, day: date, seed: int) -> SessionPaths:
    return SessionPaths(nifty_path, day, seed)
