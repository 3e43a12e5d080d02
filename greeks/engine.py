"""Implied volatility and Greeks for European options over numpy arrays (pure: no Django, no clock).

Models: ``"black76"`` takes the forward as ``underlying`` (index options, forward from the future or
from put-call parity); ``"bs"`` takes spot with a continuous rate, which is what mibian.BS implements.

Units are mibian's, so the two can be compared directly: iv as a fraction; delta and gamma per unit of
``underlying``; theta in rupees per calendar day; vega and rho in rupees per 1 percentage point.
Theta holds ``underlying`` fixed (spot for "bs", as mibian does; forward for "black76"), and Black-76
rho holds the forward fixed, so it is -T * price / 100.
"""

from datetime import date, datetime, time, timedelta, timezone
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from greeks.solver import MAX_ITERATIONS, FloatArray, IntArray, normalised_otm_call, solve_total_vol
from greeks.status import GreeksStatus

Model = Literal["black76", "bs"]
BoolArray = npt.NDArray[np.bool_]
StatusArray = npt.NDArray[np.int8]

IST = timezone(timedelta(hours=5, minutes=30))
NSE_EXPIRY_CUTOFF = time(15, 30)
SECONDS_PER_YEAR = 365 * 86400
DAYS_PER_YEAR = 365.0
INV_SQRT_2PI = 0.3989422804014327


class GreeksResult(NamedTuple):
    iv: FloatArray
    delta: FloatArray
    gamma: FloatArray
    theta: FloatArray
    vega: FloatArray
    rho: FloatArray
    status: StatusArray


class Greeks(NamedTuple):
    delta: FloatArray
    gamma: FloatArray
    theta: FloatArray
    vega: FloatArray
    rho: FloatArray


class ImpliedVol(NamedTuple):
    iv: FloatArray
    status: StatusArray
    iterations: IntArray  # solver residual evaluations; 0 where no solve was attempted


class ChainIV(NamedTuple):
    iv: FloatArray  # one IV per strike, valid for both the CE and the PE
    status: StatusArray
    from_call: BoolArray  # True where the CE was the OTM leg the IV came from


class _Market(NamedTuple):
    """Flat float64 views of one batch, with the model folded into forward and discount factor."""

    spot: FloatArray  # discounted forward; equals the input spot for "bs"
    forward: FloatArray
    strike: FloatArray
    t: FloatArray
    rate: FloatArray
    discount: FloatArray
    sign: FloatArray  # +1 call, -1 put
    x: FloatArray  # ln(F/K)
    bs: bool


def year_fraction(now_epoch: float, expiry_date: date) -> float:
    """Years of 365 days from ``now_epoch`` (Unix seconds) to 15:30 IST on ``expiry_date``."""
    expiry = datetime.combine(expiry_date, NSE_EXPIRY_CUTOFF, tzinfo=IST)
    return (expiry.timestamp() - now_epoch) / SECONDS_PER_YEAR


def implied_vol_and_greeks(
    price: npt.ArrayLike,
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    model: Model = "black76",
) -> GreeksResult:
    """IV from each option's own price, then Greeks at that IV; NaN plus a status where impossible."""
    shape, (quote, *market_args), call = _broadcast(price, underlying, strike, t_years, rate, is_call=is_call)
    status = _status(quote, *market_args, call, model)
    ok = np.flatnonzero(status == GreeksStatus.OK)
    m = _market(*(a[ok] for a in market_args), call[ok], model)
    quote_ok = quote[ok]
    s, _, status[ok] = _solve(quote_ok, m, MAX_ITERATIONS)
    sigma = s / np.sqrt(m.t)
    # The solve reprices the quote to ~1e-11, so the quote stands in for the model price here.
    greeks = _greeks(m, sigma, quote_ok)
    columns = [_scatter(shape, ok, values) for values in (sigma, *greeks)]
    return GreeksResult(*columns, status.reshape(shape))


def implied_vol(
    price: npt.ArrayLike,
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    model: Model = "black76",
    max_iterations: int = MAX_ITERATIONS,
) -> ImpliedVol:
    """IV alone, with the solver's iteration count per option (for tests, benchmarks, debugging)."""
    shape, (quote, *market_args), call = _broadcast(price, underlying, strike, t_years, rate, is_call=is_call)
    status = _status(quote, *market_args, call, model)
    ok = np.flatnonzero(status == GreeksStatus.OK)
    m = _market(*(a[ok] for a in market_args), call[ok], model)
    s, iterations, status[ok] = _solve(quote[ok], m, max_iterations)
    all_iterations = np.zeros(status.size, dtype=np.int64)
    all_iterations[ok] = iterations
    return ImpliedVol(
        _scatter(shape, ok, s / np.sqrt(m.t)), status.reshape(shape), all_iterations.reshape(shape)
    )


def greeks_at_vol(
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    vol: npt.ArrayLike,
    model: Model = "black76",
) -> Greeks:
    """Greeks at a given volatility (fraction); NaN where an input is invalid, t <= 0 or vol <= 0."""
    shape, ok, m, sigma = _at_vol_inputs(underlying, strike, t_years, rate, is_call, vol, model)
    greeks = _greeks(m, sigma, _price(m, sigma))
    return Greeks(*(_scatter(shape, ok, values) for values in greeks))


def price_at_vol(
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    vol: npt.ArrayLike,
    model: Model = "black76",
) -> FloatArray:
    """Option value at a given volatility; NaN where an input is invalid, t <= 0 or vol <= 0."""
    shape, ok, m, sigma = _at_vol_inputs(underlying, strike, t_years, rate, is_call, vol, model)
    return _scatter(shape, ok, _price(m, sigma))


def chain_iv_from_otm(
    call_price: npt.ArrayLike,
    put_price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
) -> ChainIV:
    """One Black-76 IV per strike from its OTM leg (CE for K >= F, PE for K < F), for both legs.

    The ITM leg's price is mostly intrinsic value, so its IV is ill-conditioned and on a 0.05 tick
    often undefined; by put-call parity the OTM leg carries the same time value without that noise.
    """
    shape, (call_p, put_p, fwd, k, t, r), _ = _broadcast(call_price, put_price, forward, strike, t_years, rate)
    from_call = k >= fwd
    result = implied_vol(np.where(from_call, call_p, put_p), fwd, k, t, r, from_call, model="black76")
    return ChainIV(result.iv.reshape(shape), result.status.reshape(shape), from_call.reshape(shape))


def quote_status(
    price: npt.ArrayLike,
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    model: Model = "black76",
) -> StatusArray:
    """Input checks alone: OK where a volatility can price the quote, else the reason it cannot."""
    shape, (quote, *market_args), call = _broadcast(price, underlying, strike, t_years, rate, is_call=is_call)
    return _status(quote, *market_args, call, model).reshape(shape)


def _broadcast(
    *values: npt.ArrayLike, is_call: npt.ArrayLike = True
) -> tuple[tuple[int, ...], list[FloatArray], BoolArray]:
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in values), np.asarray(is_call, bool))
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a).ravel() for a in arrays]
    return shape, flat[:-1], flat[-1]


def _scatter(shape: tuple[int, ...], ok: IntArray, values: FloatArray) -> FloatArray:
    out = np.full(int(np.prod(shape)), np.nan)
    out[ok] = values
    return out.reshape(shape)


def _market(
    underlying: FloatArray, strike: FloatArray, t: FloatArray, rate: FloatArray, call: BoolArray, model: Model
) -> _Market:
    if model not in ("black76", "bs"):
        raise ValueError(f"model must be 'black76' or 'bs', not {model!r}")
    discount = np.exp(-rate * t)
    bs = model == "bs"
    if bs:
        spot, forward = underlying, underlying / discount
        x = np.log(underlying / strike) + rate * t
    else:
        spot, forward = underlying * discount, underlying
        x = np.log(underlying / strike)
    sign = np.where(call, 1.0, -1.0)
    return _Market(spot, forward, strike, t, rate, discount, sign, x, bs)


def _status(
    price: FloatArray,
    underlying: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    rate: FloatArray,
    call: BoolArray,
    model: Model,
) -> StatusArray:
    """First failing check wins, in the order of the GreeksStatus docs; bounds in price space."""
    finite = np.isfinite(price) & np.isfinite(underlying) & np.isfinite(strike) & np.isfinite(t)
    finite &= np.isfinite(rate)
    with np.errstate(invalid="ignore", over="ignore"):
        invalid = ~finite | ~(underlying > 0.0) | ~(strike > 0.0)
        discount = np.exp(-rate * t)
        spot = underlying if model == "bs" else underlying * discount
        pv_strike = strike * discount
        intrinsic = np.maximum(np.where(call, spot - pv_strike, pv_strike - spot), 0.0)
        upper_bound = np.where(call, spot, pv_strike)
        below = price <= intrinsic
        above = price >= upper_bound
    status = np.full(price.shape, GreeksStatus.OK, dtype=np.int8)
    # Assigned from the least to the most fundamental failure so that the latter overwrites.
    status[above] = GreeksStatus.ABOVE_MAX
    status[below] = GreeksStatus.BELOW_INTRINSIC
    status[~(price > 0.0)] = GreeksStatus.NONPOSITIVE_PRICE
    status[~(t > 0.0)] = GreeksStatus.EXPIRED
    status[invalid] = GreeksStatus.INVALID_INPUT
    return status


def _solve(price: FloatArray, m: _Market, max_iterations: int) -> tuple[FloatArray, IntArray, StatusArray]:
    """Total volatility per option through its OTM-call equivalent; NaN plus a status where unsolvable."""
    root_fk = np.sqrt(m.forward) * np.sqrt(m.strike)
    intrinsic = np.maximum(m.sign * (m.forward - m.strike), 0.0)
    # Time value in forward money: the OTM leg of put-call parity, normalised to a forward of 1.
    beta = (price / m.discount - intrinsic) / root_fk
    x_otm = -np.abs(m.x)
    # Rounding can push a quote that passed the price-space checks onto the normalised bounds.
    status = np.full(price.shape, GreeksStatus.OK, dtype=np.int8)
    status[beta >= np.exp(0.5 * x_otm)] = GreeksStatus.ABOVE_MAX
    status[beta <= 0.0] = GreeksStatus.BELOW_INTRINSIC
    s = np.full(price.shape, np.nan)
    iterations = np.zeros(price.shape, dtype=np.int64)
    idx = np.flatnonzero(status == GreeksStatus.OK)
    solved = solve_total_vol(x_otm[idx], beta[idx], max_iterations)
    s[idx], iterations[idx] = solved.s, solved.iterations
    status[idx[~solved.converged]] = GreeksStatus.NO_CONVERGENCE
    return s, iterations, status


def _price(m: _Market, sigma: FloatArray) -> FloatArray:
    root_fk = np.sqrt(m.forward) * np.sqrt(m.strike)
    time_value = root_fk * normalised_otm_call(-np.abs(m.x), sigma * np.sqrt(m.t))
    intrinsic = np.maximum(m.sign * (m.forward - m.strike), 0.0)
    return m.discount * (intrinsic + time_value)


def _greeks(m: _Market, sigma: FloatArray, value: FloatArray) -> Greeks:
    """Closed forms in mibian's units; ``value`` is the option price at ``sigma``."""
    sqrt_t = np.sqrt(m.t)
    s = sigma * sqrt_t
    d1 = m.x / s + 0.5 * s
    pdf = INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    cdf_d1 = ndtr(m.sign * d1)
    vega = m.spot * pdf * sqrt_t / 100.0
    decay = -m.spot * pdf * sigma / (2.0 * sqrt_t)
    if m.bs:
        carry = m.sign * m.strike * m.discount * ndtr(m.sign * (d1 - s))
        delta = m.sign * cdf_d1
        gamma = pdf / (m.spot * s)
        theta = (decay - m.rate * carry) / DAYS_PER_YEAR
        rho = m.t * carry / 100.0
    else:
        delta = m.sign * m.discount * cdf_d1
        gamma = m.discount * pdf / (m.forward * s)
        theta = (decay + m.rate * value) / DAYS_PER_YEAR
        rho = -m.t * value / 100.0
    return Greeks(delta, gamma, theta, vega, rho)


def _at_vol_inputs(
    underlying: npt.ArrayLike,
    strike: npt.ArrayLike,
    t_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike,
    vol: npt.ArrayLike,
    model: Model,
) -> tuple[tuple[int, ...], IntArray, _Market, FloatArray]:
    shape, (u, k, t, r, v), call = _broadcast(underlying, strike, t_years, rate, vol, is_call=is_call)
    usable = np.isfinite(u) & np.isfinite(k) & np.isfinite(t) & np.isfinite(r) & np.isfinite(v)
    with np.errstate(invalid="ignore"):
        usable &= (u > 0.0) & (k > 0.0) & (t > 0.0) & (v > 0.0)
    ok = np.flatnonzero(usable)
    return shape, ok, _market(u[ok], k[ok], t[ok], r[ok], call[ok], model), v[ok]
