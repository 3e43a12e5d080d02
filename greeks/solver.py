"""Normalised Black call and its implied total volatility, vectorised over numpy arrays.

Every quote is reduced to an out-of-the-money Black call on a forward of 1: with
x = ln(F/K) <= 0 and total volatility s = sigma * sqrt(T), the undiscounted OTM price divided
by sqrt(F*K) is

    b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2),   0 < b < e^{x/2}.

b is convex in s below s_c = sqrt(2|x|) and concave above it, so the solver runs Halley's method
on b - beta above s_c and on ln b - ln beta below it (where b can be astronomically small), each
inside a bracket that falls back to bisection whenever a step would leave it.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import erfcx, ndtr, ndtri

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

INV_SQRT_2PI = 0.3989422804014327
SQRT_2_OVER_PI = 0.7978845608028654
INV_SQRT2 = 0.7071067811865476
SQRT_2PI = 2.5066282746310002
SQRT_PI_OVER_2 = 1.2533141373155003
LOG_SQRT_2PI = 0.9189385332046728
# The Bachelier guess is within ~3e-3 s^4; beyond this s the large-s asymptote is the better start.
BACHELIER_GUESS_MAX = 2.5
# Stop once a Halley step moves s by at most this fraction of s: convergence is cubic, so the
# error left after that step is far below double precision. A test near machine epsilon
# instead never fires when rounding noise dominates and leaves the bracket oscillating.
STEP_TOLERANCE = 1e-6
# Bisection alone needs about 50 halvings to shrink a bracket to 1e-15; Halley needs at most
# 8 in every measured case, so this cap only bounds a pathological lane.
MAX_ITERATIONS = 64

# (s, constants) -> (f, Newton step f/f', f''/f')
ResidualTerms = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray, FloatArray]]


class TotalVolSolve(NamedTuple):
    s: FloatArray  # total volatility sigma*sqrt(T); NaN where not converged
    iterations: IntArray  # residual evaluations per lane
    converged: npt.NDArray[np.bool_]


def normalised_otm_call(x: FloatArray, s: FloatArray) -> FloatArray:
    """b(x, s) for x <= 0 and s > 0, accurate to relative rounding even in the far wing."""
    out = np.empty_like(s)
    lower = s * s < -2.0 * x
    out[lower] = _b_lower(x[lower], s[lower])
    upper = ~lower
    out[upper] = _b_upper(x[upper], s[upper])
    return out


def _b_lower(x: FloatArray, s: FloatArray) -> FloatArray:
    # Written with erfcx so that neither term underflows: the Gaussian factor is pulled out.
    a = x / s
    h = 0.5 * s
    gap = erfcx(-(a + h) * INV_SQRT2) - erfcx(-(a - h) * INV_SQRT2)
    return 0.5 * np.exp(-0.5 * (a * a + h * h)) * gap


def _b_upper(x: FloatArray, s: FloatArray) -> FloatArray:
    a = x / s
    h = 0.5 * s
    return np.exp(0.5 * x) * ndtr(a + h) - np.exp(-0.5 * x) * ndtr(a - h)


def solve_total_vol(x: FloatArray, beta: FloatArray, max_iterations: int = MAX_ITERATIONS) -> TotalVolSolve:
    """Total volatility s with b(x, s) = beta, for x <= 0 and 0 < beta < e^{x/2} (callers check)."""
    s = np.full(x.shape, np.nan)
    iterations = np.zeros(x.shape, dtype=np.int64)
    s_crit = np.sqrt(-2.0 * x)
    e_pos = np.exp(0.5 * x)
    e_neg = 1.0 / e_pos
    guess = initial_guess(x, beta, e_pos, e_neg)
    # At s_crit the first Black term has d1 = 0, so b there is cheap and exact.
    upper = beta >= 0.5 * e_pos - e_neg * ndtr(-s_crit)
    for region, solve in ((upper, _solve_upper), (~upper, _solve_lower)):
        idx = np.flatnonzero(region)
        if idx.size:
            s[idx], iterations[idx] = solve(
                x[idx], beta[idx], guess[idx], s_crit[idx], e_pos[idx], e_neg[idx], max_iterations
            )
    return TotalVolSolve(s, iterations, np.isfinite(s))


def _solve_upper(
    x: FloatArray,
    beta: FloatArray,
    guess: FloatArray,
    s_crit: FloatArray,
    e_pos: FloatArray,
    e_neg: FloatArray,
    max_it: int,
) -> tuple[FloatArray, IntArray]:
    constants = np.stack([x, x * x, e_pos, e_neg, beta])
    hi = np.full_like(x, np.inf)
    return _halley_bracketed(_upper_terms, constants, np.maximum(guess, s_crit), s_crit, hi, max_it)


def _solve_lower(
    x: FloatArray,
    beta: FloatArray,
    guess: FloatArray,
    s_crit: FloatArray,
    e_pos: FloatArray,
    e_neg: FloatArray,
    max_it: int,
) -> tuple[FloatArray, IntArray]:
    del e_pos, e_neg  # the log residual needs no exponentials
    constants = np.stack([x, x * x, np.log(beta)])
    lo = np.zeros_like(x)
    return _halley_bracketed(_lower_terms, constants, np.minimum(guess, s_crit), lo, s_crit, max_it)


def initial_guess(x: FloatArray, beta: FloatArray, e_pos: FloatArray, e_neg: FloatArray) -> FloatArray:
    """Starting point for Halley: the Bachelier-based guess while it is sharp, an asymptote beyond."""
    guess = _bachelier_guess(-x, beta)
    wide = ~(guess <= BACHELIER_GUESS_MAX)
    if wide.any():
        # b_max - b(s) -> (e^{x/2} + e^{-x/2}) N(-s/2) for large s.
        tail = (e_pos[wide] - beta[wide]) / (e_pos[wide] + e_neg[wide])
        guess[wide] = -2.0 * ndtri(tail)
    return guess


def _bachelier_guess(y: FloatArray, beta: FloatArray) -> FloatArray:
    """Invert b ~ s H(y/s) (1 - s^2 G(y/s)), H(u) = phi(u) - u N(-u), through the lookup table.

    To order s^2 the normalised Black price is the normalised Bachelier price s H(u) with
    u = y / s; the s^3 term is -s^3 phi(u) G(u). Relative error of the guess ~3e-3 s^4.
    """
    with np.errstate(divide="ignore"):
        w = np.log(y) - np.log(beta)  # ln(u / H(u)), which the table inverts
    position = (w - _TABLE_W0) * (1.0 / _TABLE_STEP)
    node = np.clip(position, 0.0, _TABLE_NODES - 1.0).astype(np.intp)
    t = position - node
    c0, c1, c2, c3, g0, g1 = np.take(_GUESS_TABLE, node, axis=1)
    u = ((c3 * t + c2) * t + c1) * t + c0
    g = g0 + t * g1
    with np.errstate(divide="ignore", invalid="ignore"):
        s = y / u
    # Below the table u ~ 0: H(u) ~ 1/sqrt(2 pi) - u/2 gives s ~ sqrt(2 pi) (beta + y/2).
    s = np.where(position < 0.0, SQRT_2PI * (beta + 0.5 * y), s)
    return s * (1.0 + s * s * g)


def _upper_terms(s: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    x, x2, e_pos, e_neg, beta = c
    a = x / s
    h = 0.5 * s
    f = e_pos * ndtr(a + h) - e_neg * ndtr(a - h) - beta
    vega = INV_SQRT_2PI * np.exp(-0.5 * (a * a + h * h))
    return f, f / vega, x2 / (s * s * s) - 0.5 * h


def _lower_terms(s: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    x, x2, log_beta = c
    a = x / s
    h = 0.5 * s
    gap = erfcx(-(a + h) * INV_SQRT2) - erfcx(-(a - h) * INV_SQRT2)
    f = np.log(0.5 * gap) - 0.5 * (a * a + h * h) - log_beta
    # d/ds ln b = sqrt(2/pi) / gap: no exponential, so no underflow deep in the wing.
    log_slope = SQRT_2_OVER_PI / gap
    return f, f / log_slope, x2 / (s * s * s) - 0.5 * h - log_slope


def _halley_bracketed(
    terms: ResidualTerms,
    constants: FloatArray,
    s: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    max_iterations: int,
) -> tuple[FloatArray, IntArray]:
    """Halley iteration on an increasing residual, kept inside [lo, hi]; converged lanes drop out."""
    result = np.full(s.shape, np.nan)
    iterations = np.full(s.shape, max_iterations, dtype=np.int64)
    idx = np.arange(s.size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for it in range(1, max_iterations + 1):
            f, newton, curvature = terms(s, constants)
            below = f < 0.0
            lo = np.where(below, s, lo)
            hi = np.where(below, hi, s)
            step = -newton / (1.0 - 0.5 * newton * curvature)
            candidate = s + step
            # A step this small is rounding noise around the root: accept it even if it grazes a
            # bracket end that the same noise just moved there.
            tiny = (np.abs(step) <= STEP_TOLERANCE * s) | (f == 0.0)
            inside = tiny | ((candidate > lo) & (candidate < hi))
            fallback = np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * s)
            s_next = np.where(inside, np.where(f == 0.0, s, candidate), fallback)
            done = tiny
            if done.any():
                result[idx[done]] = s_next[done]
                iterations[idx[done]] = it
                keep = ~done
                idx, s_next, lo, hi, constants = idx[keep], s_next[keep], lo[keep], hi[keep], constants[:, keep]
                if not idx.size:
                    break
            s = s_next
    return result, iterations


def _mills(u: FloatArray) -> FloatArray:
    return SQRT_PI_OVER_2 * erfcx(u * INV_SQRT2)


def _build_guess_table() -> FloatArray:
    """Per-interval cubic Hermite coefficients of u(w), w = ln(u / H(u)), plus linear G(u)."""
    w_nodes = _TABLE_W0 + _TABLE_STEP * np.arange(_TABLE_NODES + 1)
    u_dense = np.concatenate([np.geomspace(1e-10, 1.0, 2000, endpoint=False), np.linspace(1.0, 41.0, 8000)])
    u = np.interp(w_nodes, _w_of_u(u_dense), u_dense)
    for _ in range(4):  # Newton polish of the dense-table interpolation
        u -= (_w_of_u(u) - w_nodes) / _dw_du(u)
    m = _TABLE_STEP / _dw_du(u)
    mills = _mills(u)
    g = ((1.0 - u * u) + u**3 * mills) / 24.0
    u0, u1, m0, m1 = u[:-1], u[1:], m[:-1], m[1:]
    return np.stack(
        [u0, m0, 3.0 * (u1 - u0) - 2.0 * m0 - m1, 2.0 * (u0 - u1) + m0 + m1, g[:-1], g[1:] - g[:-1]]
    )


def _w_of_u(u: FloatArray) -> FloatArray:
    # ln(u / H(u)) with H = phi(u) (1 - u Mills(u)), kept in logs so that phi never underflows.
    return np.log(u) + 0.5 * u * u + LOG_SQRT_2PI - np.log1p(-u * _mills(u))


def _dw_du(u: FloatArray) -> FloatArray:
    mills = _mills(u)
    return 1.0 / u + mills / (1.0 - u * mills)


# w from u ~ 6e-9 (below it the series in _bachelier_guess is exact to 1e-8) to u ~ 40, beyond
# any representable price. A step of 0.05 keeps the Hermite error near 2e-8 relative.
_TABLE_W0 = -18.0
_TABLE_STEP = 0.05
_TABLE_NODES = 16_700
_GUESS_TABLE = _build_guess_table()
