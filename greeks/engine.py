"""Implied volatility and Greeks for European options over numpy arrays (pure: no Django, no clock).

Models: ``"black76"`` takes the forward as ``underlying`` (index options, forward from the future or
from put-call parity); ``"bs"`` takes spot with a continuous rate, which is what mibian.BS implements.

Units are mibian's, so the two can be compared directly: iv as a fraction; delta and gamma per unit of
``underlying``; theta in rupees per calendar day; vega and rho in rupees per 1 percentage point.
Theta holds ``underlying`` fixed (spot for "bs", as mibian does; the forward for "black76"), and
Black-76 rho holds the forward fixed, so it is -T * price / 100.
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
# An ITM quote's time value is a difference of numbers of size F and K; within a few ulps of
# F + K it is rounding noise, and parity would hand the solver that noise as a price.
INTRINSIC_NOISE = 8.0 * np.finfo(np.float64).eps
# Quotes this close to the no-arbitrage bound also get the bound checked in normalised terms.
NEAR_BOUND = 1.0 - 1e-9
# Lanes per pass: numpy temporaries stay in cache, so large batches run at the chain's speed.
CHUNK = 4096


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
    """One batch with the model folded into a forward and a discount factor."""

    spot: FloatArray  # discounted forward; equals the input spot for "bs"
    forward: FloatArray
    strike: FloatArray
    t: FloatArray
    sqrt_t: FloatArray
    rate: FloatArray
    discount: FloatArray
    sign: FloatArray  # +1 call, -1 put
    x: FloatArray  # ln(F/K)
    bs: bool

    def subset(self, idx: IntArray) -> "_Market":
        return _Market(*(a[idx] for a in self[:-1]), self.bs)


class _Solved(NamedTuple):
    ok: IntArray | None  # lanes of the chunk that were solved; None when all were
    status: StatusArray  # every lane of the chunk
    market: _Market  # solved lanes only
    price: FloatArray
    s: FloatArray  # total volatility
    iterations: IntArray


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
    shape, data, call = _flatten(price, underlying, strike, t_years, rate, is_call=is_call)
    columns = np.full((6, call.size), np.nan)
    status = np.empty(call.size, dtype=np.int8)
    for lanes in _chunks(call.size):
        solved = _solve_chunk(data[:, lanes], call[lanes], model, MAX_ITERATIONS)
        status[lanes] = solved.status
        m = solved.market
        # The solve reprices the quote to ~1e-11, so the quote stands in for the model price.
        values = (solved.s / m.sqrt_t, *_greeks(m, solved.s, solved.price))
        for row, value in zip(columns, values, strict=True):
            _put(row[lanes], solved.ok, value)
    return GreeksResult(*(row.reshape(shape) for row in columns), status.reshape(shape))


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
    shape, data, call = _flatten(price, underlying, strike, t_years, rate, is_call=is_call)
    iv = np.full(call.size, np.nan)
    status = np.empty(call.size, dtype=np.int8)
    iterations = np.zeros(call.size, dtype=np.int64)
    for lanes in _chunks(call.size):
        solved = _solve_chunk(data[:, lanes], call[lanes], model, max_iterations)
        status[lanes] = solved.status
        _put(iv[lanes], solved.ok, solved.s / solved.market.sqrt_t)
        _put(iterations[lanes], solved.ok, solved.iterations)
    return ImpliedVol(iv.reshape(shape), status.reshape(shape), iterations.reshape(shape))


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
    shape, ok, m, s = _at_vol_inputs(underlying, strike, t_years, rate, is_call, vol, model)
    greeks = _greeks(m, s, _price(m, s))
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
    shape, ok, m, s = _at_vol_inputs(underlying, strike, t_years, rate, is_call, vol, model)
    return _scatter(shape, ok, _price(m, s))


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
    shape, data, _ = _flatten(call_price, put_price, forward, strike, t_years, rate)
    call_p, put_p, fwd, k, t, r = data
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
    """Input checks alone: OK where some volatility prices the quote, else the reason none does."""
    shape, data, call = _flatten(price, underlying, strike, t_years, rate, is_call=is_call)
    status, _ = _classify(data, call, _market(*data[1:], call, model))
    return status.reshape(shape)


def _flatten(
    *values: npt.ArrayLike, is_call: npt.ArrayLike = True
) -> tuple[tuple[int, ...], FloatArray, BoolArray]:
    """Broadcast to one shape; floats as rows of one contiguous 2-D array, flags as a flat array."""
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    flags = np.asarray(is_call, dtype=bool)
    shape = np.broadcast_shapes(*(a.shape for a in arrays), flags.shape)
    data = np.empty((len(arrays), *shape))
    for i, array in enumerate(arrays):
        data[i] = array
    return shape, data.reshape(len(arrays), -1), np.broadcast_to(flags, shape).ravel()


def _chunks(n: int) -> list[slice]:
    return [slice(start, start + CHUNK) for start in range(0, n, CHUNK)]


def _put(destination: npt.NDArray[np.generic], ok: IntArray | None, values: npt.NDArray[np.generic]) -> None:
    if ok is None:
        destination[...] = values
    else:
        destination[..., ok] = values


def _scatter(shape: tuple[int, ...], ok: IntArray, values: FloatArray) -> FloatArray:
    out = np.full(int(np.prod(shape)), np.nan)
    out[ok] = values
    return out.reshape(shape)


def _check_model(model: str) -> None:
    if model not in ("black76", "bs"):
        raise ValueError(f"model must be 'black76' or 'bs', not {model!r}")


def _market(
    underlying: FloatArray, strike: FloatArray, t: FloatArray, rate: FloatArray, call: BoolArray, model: str
) -> _Market:
    """Forward, discount factor and log-moneyness; garbage (never an error) on invalid lanes."""
    _check_model(model)
    bs = model == "bs"
    with np.errstate(all="ignore"):
        discount = np.exp(-rate * t)
        log_moneyness = np.log(underlying / strike)
        if bs:
            spot, forward, x = underlying, underlying / discount, log_moneyness + rate * t
        else:
            spot, forward, x = underlying * discount, underlying, log_moneyness
        sqrt_t = np.sqrt(t)
    sign = np.where(call, 1.0, -1.0)
    return _Market(spot, forward, strike, t, sqrt_t, rate, discount, sign, x, bs)


def _solve_chunk(data: FloatArray, call: BoolArray, model: Model, max_iterations: int) -> _Solved:
    m = _market(*data[1:], call, model)
    status, beta = _classify(data, call, m)
    price = data[0]
    ok = None
    if status.any():
        ok = np.flatnonzero(status == GreeksStatus.OK)
        m, beta, price = m.subset(ok), beta[ok], price[ok]
    solved = solve_total_vol(-np.abs(m.x), beta, max_iterations)
    if not solved.converged.all():
        _put(status, ok, np.where(solved.converged, GreeksStatus.OK, GreeksStatus.NO_CONVERGENCE))
    return _Solved(ok, status, m, price, solved.s, solved.iterations)


def _classify(data: FloatArray, call: BoolArray, m: _Market) -> tuple[StatusArray, FloatArray]:
    """Status per lane, and the normalised OTM time value beta that the solver inverts."""
    price = data[0]
    with np.errstate(all="ignore"):
        intrinsic = np.maximum(m.sign * (m.forward - m.strike), 0.0)
        # Time value in forward money: the OTM leg of put-call parity, normalised to a forward of 1.
        time_value = price / m.discount - intrinsic
        beta = time_value / (np.sqrt(m.forward) * np.sqrt(m.strike))
        upper_bound = np.where(call, m.spot, m.strike * m.discount)
        # In price space, so that a quote of exactly the bound is caught whatever the rounding.
        above = price >= upper_bound
        noise = np.where(intrinsic > 0.0, INTRINSIC_NOISE * (m.forward + m.strike), 0.0)
        below = time_value <= noise
        usable = np.isfinite(data).all(axis=0) & (data[:4] > 0.0).all(axis=0)
        # Within rounding of the bound, normalising can still land beta on b_max = e^{-|x|/2}.
        near = np.flatnonzero(price >= upper_bound * NEAR_BOUND)
        above[near] |= beta[near] >= np.exp(-0.5 * np.abs(m.x[near]))
    status = np.zeros(price.shape, dtype=np.int8)
    if usable.all() and not (above.any() or below.any()):
        return status, beta
    # From the least to the most fundamental failure, so that the latter overwrites.
    status[above] = GreeksStatus.ABOVE_MAX
    status[below] = GreeksStatus.BELOW_INTRINSIC
    if not usable.all():
        underlying, strike, t, _ = data[1:]
        with np.errstate(invalid="ignore"):
            status[~(price > 0.0)] = GreeksStatus.NONPOSITIVE_PRICE
            status[~(t > 0.0)] = GreeksStatus.EXPIRED
            invalid = ~np.isfinite(data).all(axis=0) | ~(underlying > 0.0) | ~(strike > 0.0)
        status[invalid] = GreeksStatus.INVALID_INPUT
    return status, beta


def _price(m: _Market, s: FloatArray) -> FloatArray:
    root_fk = np.sqrt(m.forward) * np.sqrt(m.strike)
    intrinsic = np.maximum(m.sign * (m.forward - m.strike), 0.0)
    return m.discount * (intrinsic + root_fk * normalised_otm_call(-np.abs(m.x), s))


def _greeks(m: _Market, s: FloatArray, value: FloatArray) -> Greeks:
    """Closed forms in mibian's units at total volatility s; ``value`` is the option price there."""
    d1 = m.x / s + 0.5 * s
    pdf = INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    cdf_d1 = ndtr(m.sign * d1)
    spot_pdf = m.spot * pdf
    vega = spot_pdf * m.sqrt_t / 100.0
    # sigma / (2 sqrt t) = s / (2 t)
    decay = -spot_pdf * s / (2.0 * m.t)
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
    shape, data, call = _flatten(underlying, strike, t_years, rate, vol, is_call=is_call)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(data).all(axis=0) & (data[[0, 1, 2, 4]] > 0.0).all(axis=0)
    ok = np.flatnonzero(usable)
    u, k, t, r, v = data[:, ok]
    m = _market(u, k, t, r, call[ok], model)
    return shape, ok, m, v * m.sqrt_t
