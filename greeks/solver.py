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
# Stop once a Halley step moves s by at most this fraction of s: convergence is cubic, so the
# error left after that step is far below double precision. A test near machine epsilon
# instead never fires when rounding noise dominates and leaves the bracket oscillating.
STEP_TOLERANCE = 1e-10
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
    half_x = 0.5 * x
    e_pos, e_neg = np.exp(half_x), np.exp(-half_x)
    # At s_crit the first Black term has d1 = 0, so b there is cheap and exact.
    upper = beta >= 0.5 * e_pos - e_neg * ndtr(-s_crit)
    for region, solve in ((upper, _solve_upper), (~upper, _solve_lower)):
        idx = np.flatnonzero(region)
        if idx.size:
            s[idx], iterations[idx] = solve(
                x[idx], beta[idx], s_crit[idx], e_pos[idx], e_neg[idx], max_iterations
            )
    return TotalVolSolve(s, iterations, np.isfinite(s))


def _solve_upper(
    x: FloatArray, beta: FloatArray, s_crit: FloatArray, e_pos: FloatArray, e_neg: FloatArray, max_it: int
) -> tuple[FloatArray, IntArray]:
    # b_max - b(s) -> (e^{x/2} + e^{-x/2}) N(-s/2) for large s, and is exact at the money.
    with np.errstate(divide="ignore"):
        guess = -2.0 * ndtri((e_pos - beta) / (e_pos + e_neg))
    guess = np.maximum(guess, s_crit)
    constants = np.stack([x, x * x, e_pos, e_neg, beta])
    return _halley_bracketed(_upper_terms, constants, guess, s_crit, np.full_like(x, np.inf), max_it)


def _solve_lower(
    x: FloatArray, beta: FloatArray, s_crit: FloatArray, e_pos: FloatArray, e_neg: FloatArray, max_it: int
) -> tuple[FloatArray, IntArray]:
    del e_pos, e_neg  # the log residual needs no exponentials
    log_beta = np.log(beta)
    # Leading order of ln b ~ -x^2 / (2 s^2) in the wing.
    guess = np.minimum(-x / np.sqrt(-2.0 * log_beta), 0.5 * s_crit)
    constants = np.stack([x, x * x, log_beta])
    return _halley_bracketed(_lower_terms, constants, guess, np.zeros_like(x), s_crit, max_it)


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
