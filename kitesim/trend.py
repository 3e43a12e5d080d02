"""A trending NIFTY path: a steady signed drift, optionally reversing every K minutes, plus a small noise.

Tests and ``bench/rebalance.py`` use it to make the ATM window chase the price: at 60 points a simulated
minute NIFTY crosses 20 strikes of 50 in under 17 simulated minutes (17 real seconds at speed 60).

The knots sit where :class:`kitesim.paths.NiftyReplay` puts them (each minute's :00, :15, :35 and :55,
and the close), linear in between, so the index candles stay exact (README "Candles and the stream").
A knot's level is the drift's plus a seeded uniform noise in ``[-noise, +noise]``: every level of the
session lies within ``noise_points`` (plus the 0.005 of rounding) of ``TrendSpec.expected``.
"""

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

from kitesim.paths import (
    BAR_KNOT_OFFSETS,
    DERIVED_NOISE_AMPLITUDE,
    SESSION_SECONDS,
    SessionPath,
    session_open_epoch,
)
from kitesim.pricing import uniform01
from kitesim.universe import NIFTY_REFERENCE_LEVEL, UNDERLYINGS

SESSION_MINUTES = SESSION_SECONDS / 60.0
TREND_NOISE_SALT = 0x74726E64  # "trnd": keeps these draws apart from the model's other hashes
# Strikes listed beyond the day's range: an ATM ± 10 window and its hysteresis band still fit at the edge.
CHAIN_MARGIN_STRIKES = 15


@dataclass(frozen=True, slots=True)
class TrendSpec:
    """``points_per_min`` is signed; ``reverse_minutes`` 0 walks one way all session.

    Reversals fall on whole minutes, so on knots: a turn between two knots would be cut short.
    """

    points_per_min: float = 60.0
    reverse_minutes: int = 20
    noise_points: float = 5.0
    level: float = NIFTY_REFERENCE_LEVEL

    def __post_init__(self) -> None:
        for name in ("points_per_min", "reverse_minutes", "noise_points", "level"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"trend {name} must be a finite number")
        if self.reverse_minutes < 0 or self.noise_points < 0:
            raise ValueError("trend reverse_minutes and noise_points must be >= 0")
        if self.reverse_minutes != int(self.reverse_minutes):
            raise ValueError("trend reverse_minutes must be a whole number of minutes")
        low, _ = self.session_range()
        if self.level + low - self.noise_points <= 0:
            raise ValueError(
                f"a trend of {self.points_per_min} points a minute from {self.level} falls below zero"
            )

    def drift(self, minutes: np.ndarray | float) -> np.ndarray:
        """The signed move from the open ``minutes`` after 09:15: a ramp, or with ``reverse_minutes`` K a
        triangle wave that goes the drift's way for K minutes, back for K, and again."""
        m = np.asarray(minutes, dtype=float)
        k = self.reverse_minutes
        if k == 0:
            return self.points_per_min * m
        return self.points_per_min * (k - np.abs(np.mod(m, 2.0 * k) - k))

    def expected(self, minutes: np.ndarray | float) -> np.ndarray:
        """The noiseless level ``minutes`` after the open."""
        return self.level + self.drift(minutes)

    def session_range(self) -> tuple[float, float]:
        """The lowest and highest drift of a session (the open's 0 included)."""
        leg = self.points_per_min * (min(self.reverse_minutes, SESSION_MINUTES) or SESSION_MINUTES)
        return min(0.0, leg), max(0.0, leg)


class NiftyTrend:
    """The :class:`kitesim.paths.NiftyPath` of a :class:`TrendSpec`; every session starts at ``spec.level``."""

    def __init__(self, seed: int, spec: TrendSpec | None = None) -> None:
        self.seed = seed
        self.spec = spec or TrendSpec()

    def session(self, day: date) -> SessionPath:
        seconds = (60.0 * np.arange(int(SESSION_MINUTES))[:, None] + np.array(BAR_KNOT_OFFSETS)).ravel()
        seconds = np.append(seconds, SESSION_SECONDS)
        draws = uniform01(self.seed, TREND_NOISE_SALT, day.toordinal(), np.arange(seconds.size))
        noise = self.spec.noise_points * (2.0 * draws - 1.0)
        levels = np.round(self.spec.expected(seconds / 60.0) + noise, 2)
        return SessionPath(day, session_open_epoch(day) + seconds, levels, self.spec.level)


def trend_chain_levels(spec: TrendSpec) -> dict[str, float]:
    """Where each underlying's strikes are centred: the middle of the day's range, times its NIFTY ratio."""
    low, high = spec.session_range()
    middle = spec.level + (low + high) / 2.0
    return {name: middle * u.nifty_ratio for name, u in UNDERLYINGS.items()}


def trend_strikes_each_side(spec: TrendSpec, at_least: int) -> int:
    """Strikes each side of the centre so every underlying's chain holds the day's range with a margin."""
    low, high = spec.session_range()
    half = (high - low) / 2.0 + spec.noise_points
    # BANKNIFTY and SENSEX wander up to DERIVED_NOISE_AMPLITUDE of their level around NIFTY x ratio.
    wander = (spec.level + high + spec.noise_points) * DERIVED_NOISE_AMPLITUDE
    widest = max((half + wander) * u.nifty_ratio / u.strike_step for u in UNDERLYINGS.values())
    # +1: the centre itself is rounded to a strike, up to half a step away from the middle.
    return max(at_least, math.ceil(widest) + 1 + CHAIN_MARGIN_STRIKES)
