"""mibian 0.1.3 behind the engine's signatures: golden values for tests and a selectable slow backend.

mibian only implements Black-Scholes on spot (``mibian.BS([spot, strike, rate %, days], ...)``),
so a Black-76 quote on forward F is passed as spot S = F e^{-rT}: the option value is identical
(measured 3e-12), and mibian's spot-based Greeks map exactly to the forward-based ones:

    delta_F = e^{-rT} delta_S              (dS/dF = e^{-rT})
    gamma_F = e^{-2rT} gamma_S
    vega_F  = vega_S                       (the same price as a function of sigma)
    theta_F = theta_S + r S delta_S / 365  (with F held, S = F e^{-rT} drifts up at rate r)
    rho_F   = rho_S - T S delta_S / 100    (with F held, S falls as r rises)

mibian's IV is a bisection that stops once the price, rounded to as many decimals as
``str(quote)`` prints, equals the quote; on a quote it cannot reach it runs 10,000 steps (~0.9 s)
and returns a bracket end. So quotes the engine's checks reject, quotes that ``str`` prints in
exponent notation (mibian raises IndexError or never matches) and quotes outside the prices of
its [1e-5 %, 500 %] search range never reach it: they get NaN and a status, as from the engine.
"""

from typing import NamedTuple

import mibian
import numpy as np
import numpy.typing as npt

from greeks.engine import Greeks, GreeksResult, Model, quote_status
from greeks.status import GreeksStatus

FloatArray = npt.NDArray[np.float64]
Row = tuple[float, float, float, float, float]

DAYS_PER_YEAR = 365.0
# mibian's bisection interval in percent; it floors the midpoint at the lower end.
MIBIAN_VOL_MIN_PCT = 1e-5
MIBIAN_VOL_MAX_PCT = 500.0
# mibian rounds every quote to 6 decimals before solving.
MIBIAN_QUOTE_DECIMALS = 6


class _Lane(NamedTuple):
    """One option in mibian's terms."""

    spot: float
    strike: float
    rate: float  # continuous, as a fraction
    t: float  # years
    is_call: bool

    def args(self) -> list[float]:
        return [self.spot, self.strike, self.rate * 100.0, self.t * DAYS_PER_YEAR]


def printed_decimals(quote: float) -> int:
    """The decimals mibian matches a quote to: what ``str`` prints after the point."""
    return len(str(quote).split(".")[1])


def implied_vol_and_greeks(
    price: npt.ArrayLike,
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    model: Model = "black76",
) -> GreeksResult:
    """mibian's IV and its Greeks at that IV, one option at a time, in the engine's units."""
    status = quote_status(price, underlying, strike, t_years, rate, is_call, model)
    shape = status.shape
    (quote, *market), calls = _flatten(shape, price, underlying, strike, t_years, rate, is_call=is_call)
    status = status.ravel().copy()
    columns = np.full((6, status.size), np.nan)
    for i in np.flatnonzero(status == GreeksStatus.OK):
        lane = _lane(*(a[i] for a in market), calls[i], model)
        vol_pct = _mibian_iv(lane, float(quote[i]))
        if vol_pct is None:
            status[i] = GreeksStatus.NO_CONVERGENCE
            continue
        columns[0, i] = vol_pct / 100.0
        columns[1:, i] = _to_model_units(_mibian_greeks(lane, vol_pct), lane, model)
    return GreeksResult(*(row.reshape(shape) for row in columns), status.reshape(shape))


def greeks_at_vol(
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    vol: npt.ArrayLike,
    model: Model = "black76",
) -> Greeks:
    """mibian's Greeks at a given volatility (fraction), in the engine's units; NaN where invalid."""
    shape, lanes, vols = _at_vol_lanes(underlying, strike, t_years, rate, is_call, vol, model)
    columns = np.full((5, len(vols)), np.nan)
    for i, (lane, vol_pct) in enumerate(zip(lanes, vols, strict=True)):
        if lane is not None:
            columns[:, i] = _to_model_units(_mibian_greeks(lane, vol_pct), lane, model)
    return Greeks(*(row.reshape(shape) for row in columns))


def price_at_vol(
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    vol: npt.ArrayLike,
    model: Model = "black76",
) -> FloatArray:
    """mibian's option value at a given volatility (fraction); NaN where invalid."""
    shape, lanes, vols = _at_vol_lanes(underlying, strike, t_years, rate, is_call, vol, model)
    prices = np.full(len(vols), np.nan)
    for i, (lane, vol_pct) in enumerate(zip(lanes, vols, strict=True)):
        if lane is not None:
            prices[i] = _mibian_price(lane, vol_pct)
    return prices.reshape(shape)


def _flatten(
    shape: tuple[int, ...], *values: npt.ArrayLike, is_call: npt.ArrayLike
) -> tuple[list[FloatArray], npt.NDArray[np.bool_]]:
    floats = [np.broadcast_to(np.asarray(v, dtype=np.float64), shape).ravel() for v in values]
    return floats, np.broadcast_to(np.asarray(is_call, dtype=bool), shape).ravel()


def _lane(underlying: float, strike: float, t: float, rate: float, is_call: bool, model: Model) -> _Lane:
    spot = underlying if model == "bs" else underlying * np.exp(-rate * t)
    return _Lane(float(spot), float(strike), float(rate), float(t), bool(is_call))


def _at_vol_lanes(
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    vol: npt.ArrayLike,
    model: Model,
) -> tuple[tuple[int, ...], list[_Lane | None], FloatArray]:
    """Lanes mibian can price (None where it would raise or return None) and vols in percent."""
    values = (underlying, strike, t_years, rate, vol, is_call)
    shape = np.broadcast_shapes(*(np.shape(v) for v in values))
    (u, k, t, r, v), calls = _flatten(shape, *values[:5], is_call=is_call)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(u + k + t + r + v) & (u > 0) & (k > 0) & (t > 0) & (v > 0)
    lanes = [_lane(u[i], k[i], t[i], r[i], calls[i], model) if usable[i] else None for i in range(u.size)]
    return shape, lanes, v * 100.0


def _mibian_price(lane: _Lane, vol_pct: float) -> float:
    option = mibian.BS(lane.args(), volatility=vol_pct, performance=True)
    return option.callPrice if lane.is_call else option.putPrice


def _mibian_greeks(lane: _Lane, vol_pct: float) -> Row:
    o = mibian.BS(lane.args(), volatility=vol_pct)
    if lane.is_call:
        return o.callDelta, o.gamma, o.callTheta, o.vega, o.callRho
    return o.putDelta, o.gamma, o.putTheta, o.vega, o.putRho


def _mibian_iv(lane: _Lane, quote: float) -> float | None:
    """mibian's IV in percent, or None where its bisection could not stop on this quote."""
    target = round(quote, MIBIAN_QUOTE_DECIMALS)
    if target <= 0.0 or "e" in str(target):
        return None
    decimals = printed_decimals(target)
    lowest = round(_mibian_price(lane, MIBIAN_VOL_MIN_PCT), decimals)
    highest = round(_mibian_price(lane, MIBIAN_VOL_MAX_PCT), decimals)
    if not lowest <= target <= highest:
        return None
    side = {"callPrice": target} if lane.is_call else {"putPrice": target}
    vol_pct = mibian.BS(lane.args(), **side).impliedVolatility
    # mibian returns its last midpoint even when 10,000 steps never matched the quote.
    if round(_mibian_price(lane, vol_pct), decimals) != target:
        return None
    return vol_pct


def _to_model_units(greeks: Row, lane: _Lane, model: Model) -> Row:
    if model == "bs":
        return greeks
    delta, gamma, theta, vega, rho = greeks
    discount = np.exp(-lane.rate * lane.t)
    spot_delta = lane.spot * delta
    return (
        discount * delta,
        discount * discount * gamma,
        theta + lane.rate * spot_delta / DAYS_PER_YEAR,
        vega,
        rho - lane.t * spot_delta / 100.0,
    )
