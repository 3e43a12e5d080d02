"""The rebalancer's strike maths: where ATM is, and which strikes surround it.

Pure functions over floats: no Django, no Redis, no clock (the caller passes ``now``, epoch seconds).
The hysteresis and cooldown follow NautilusTrader's AtmTracker (0.6 of the strike gap, 5 s), so a price
oscillating at a strike boundary does not churn subscriptions.
"""

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

# Gaps are compared after rounding so that float noise (25000.05 - 25000.0) does not split one gap
# into several "distinct" ones when finding the modal gap.
_GAP_DECIMALS = 6


@dataclass(frozen=True)
class AtmState:
    """The strike the subscribed window is centred on, and when it last moved (epoch seconds)."""

    centre: float
    moved_at: float


def atm_recentre(
    price: float,
    strike_step: float,
    state: AtmState | None,
    now: float,
    *,
    hysteresis: float = 0.6,
    cooldown_s: float = 5.0,
) -> AtmState:
    """The window's centre after seeing ``price`` at ``now``.

    The centre is always a multiple of ``strike_step``: the multiple nearest the price (a price exactly
    half-way rounds up). Rules:

    - First call (``state`` is None): centre on the multiple nearest ``price``.
    - Afterwards the centre moves only when ``|price - centre| > hysteresis * strike_step``, i.e. the price
      has passed 0.6 of a strike gap beyond the current centre (0.1 of a gap past the half-way point
      where the nearest strike changes). Returning needs the same 0.6 gap the other way, so a price
      oscillating anywhere inside a 0.2-gap band around a boundary never moves the centre.
    - A move jumps straight to the multiple nearest the price, several steps at once if it gapped.
    - Never moves while ``now - state.moved_at < cooldown_s`` (also when ``now`` is before
      ``moved_at``); the returned state is then ``state`` itself.

    A hysteresis below 0.5 behaves as 0.5: the centre never moves to a strike that is not nearest.
    """
    _require_finite(price, "price")
    _require_positive(strike_step, "strike_step")
    _require_finite(now, "now")
    if hysteresis < 0 or not math.isfinite(hysteresis):
        raise ValueError(f"hysteresis must be a finite number >= 0, got {hysteresis!r}")
    if cooldown_s < 0 or not math.isfinite(cooldown_s):
        raise ValueError(f"cooldown_s must be a finite number >= 0, got {cooldown_s!r}")
    nearest = _nearest_multiple(price, strike_step)
    if state is None:
        return AtmState(centre=nearest, moved_at=now)
    if now - state.moved_at < cooldown_s:
        return state
    if abs(price - state.centre) <= hysteresis * strike_step or nearest == state.centre:
        return state
    return AtmState(centre=nearest, moved_at=now)


@dataclass(frozen=True)
class AtmBand:
    """The prices between which ``atm_recentre`` keeps its centre: a price outside, once the cooldown
    has passed (``not_before``, epoch seconds), moves it. A feed watches its underlying's ticks against
    the band so a re-plan starts on the tick that crosses it, not at the next beat."""

    low: float
    high: float
    not_before: float

    def crossed_by(self, price: float, now: float) -> bool:
        return now >= self.not_before and not (self.low <= price <= self.high)


def atm_band(
    state: AtmState, strike_step: float, *, hysteresis: float = 0.6, cooldown_s: float = 5.0
) -> AtmBand:
    """The band of ``state``: centre ± max(hysteresis, 0.5) * strike_step; the cooldown from ``moved_at``.

    The rule of ``atm_recentre`` (exactly, for a hysteresis of 0.5 or more): for a price inside the band
    it returns ``state`` unchanged, and for a price outside, after the cooldown, it moves the centre.
    """
    _require_positive(strike_step, "strike_step")
    reach = max(hysteresis, 0.5) * strike_step
    return AtmBand(state.centre - reach, state.centre + reach, state.moved_at + cooldown_s)


def atm_band_merge(bands: Sequence[AtmBand]) -> AtmBand:
    """One underlying watched for several expiries: the tightest band, the earliest time it may move."""
    if not bands:
        raise ValueError("bands must not be empty")
    return AtmBand(
        max(band.low for band in bands), min(band.high for band in bands), min(b.not_before for b in bands)
    )


def strike_step(strikes: Sequence[float]) -> float:
    """The most common gap between neighbouring distinct strikes.

    Real chains widen their gaps far from the money (50 near ATM, 100 or 500 further out), so the mode,
    not the minimum or the mean, is the chain's step. Ties go to the smaller gap.
    """
    distinct = _distinct_sorted(strikes)
    if len(distinct) < 2:
        raise ValueError(f"strikes must hold at least two distinct strikes, got {len(distinct)}")
    gaps = Counter(round(high - low, _GAP_DECIMALS) for low, high in pairwise(distinct))
    return min(gaps, key=lambda gap: (-gaps[gap], gap))


def strikes_around(strikes: Sequence[float], centre: float, n: int) -> list[float]:
    """The listed strike nearest ``centre`` with the ``n`` listed strikes below and ``n`` above it.

    ``strikes`` may be unsorted and hold duplicates (a chain lists each strike for CE and PE); the result
    is ascending and distinct. Near either end of the list the window is clipped, not shifted: it then
    holds fewer than ``2n + 1`` strikes. A ``centre`` exactly half-way between two strikes picks the lower.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    _require_finite(centre, "centre")
    distinct = _distinct_sorted(strikes)
    if not distinct:
        raise ValueError("strikes must not be empty")
    middle = _nearest_index(distinct, centre)
    return distinct[max(0, middle - n) : middle + n + 1]


def _nearest_multiple(price: float, step: float) -> float:
    return math.floor(price / step + 0.5) * step


def _nearest_index(ascending: list[float], value: float) -> int:
    right = bisect_left(ascending, value)
    if right == 0:
        return 0
    if right == len(ascending):
        return right - 1
    left = right - 1
    return left if value - ascending[left] <= ascending[right] - value else right


def _distinct_sorted(strikes: Sequence[float]) -> list[float]:
    values = sorted(set(strikes))
    for value in values:
        _require_finite(value, "strikes")
    return values


def _require_finite(value: float, name: str) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _require_positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
