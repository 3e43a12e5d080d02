"""Pure option maths and deterministic noise for the market model (numpy arrays in, arrays out)."""

import numpy as np
from scipy.special import ndtr

RISK_FREE_RATE = 0.065
SECONDS_PER_YEAR = 365.0 * 86_400.0
MIN_YEARS = 60.0 / SECONDS_PER_YEAR
# Implied volatility: ATM term structure plus a smile in the standardised moneyness x = ln(K/F)/(atm*sqrt(T)).
ATM_LONG_VOL = 0.115
ATM_SHORT_EXTRA = 0.035
ATM_DECAY_YEARS = 0.05
SMILE_SKEW = -0.08
SMILE_CURVATURE = 0.04
SMILE_X_LIMIT = 6.0
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def atm_vol(years: np.ndarray) -> np.ndarray:
    """Short expiries trade at a premium that decays towards the long-dated level."""
    return ATM_LONG_VOL + ATM_SHORT_EXTRA * np.exp(-np.asarray(years) / ATM_DECAY_YEARS)


def smile_vol(strike: np.ndarray, forward: np.ndarray, years: np.ndarray) -> np.ndarray:
    years = np.maximum(years, MIN_YEARS)
    atm = atm_vol(years)
    x = np.clip(np.log(strike / forward) / (atm * np.sqrt(years)), -SMILE_X_LIMIT, SMILE_X_LIMIT)
    return atm * (1.0 + SMILE_SKEW * x + SMILE_CURVATURE * x * x)


def forward_price(spot: np.ndarray, years: np.ndarray) -> np.ndarray:
    return spot * np.exp(RISK_FREE_RATE * np.maximum(years, 0.0))


def black76(
    forward: np.ndarray, strike: np.ndarray, years: np.ndarray, vol: np.ndarray, is_call: np.ndarray
) -> np.ndarray:
    """Discounted Black-76 premium; at expiry the intrinsic value."""
    years = np.maximum(years, MIN_YEARS)
    root = vol * np.sqrt(years)
    d1 = (np.log(forward / strike) + 0.5 * root * root) / root
    d2 = d1 - root
    sign = np.where(is_call, 1.0, -1.0)
    undiscounted = sign * (forward * ndtr(sign * d1) - strike * ndtr(sign * d2))
    return np.exp(-RISK_FREE_RATE * years) * undiscounted


def round_to_tick(price: np.ndarray, tick: np.ndarray) -> np.ndarray:
    return np.round(np.round(price / tick) * tick, 2)


def mix64(*parts: np.ndarray | int) -> np.ndarray:
    """splitmix64 over the parts: a stable hash, vectorised; same inputs give the same uint64."""
    state = np.zeros(np.broadcast_shapes(*(np.shape(p) for p in parts)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in parts:
            state = state ^ (np.asarray(part).astype(np.uint64) & _MASK64)
            state = state + np.uint64(0x9E3779B97F4A7C15)
            state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            state = state ^ (state >> np.uint64(31))
    return state


def derive64(base: np.ndarray, salt: np.ndarray | int) -> np.ndarray:
    """A cheap second hash of an already mixed ``base`` (one multiply), e.g. per depth level."""
    with np.errstate(over="ignore"):
        x = (base ^ (np.asarray(salt).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))) * np.uint64(
            0xBF58476D1CE4E5B9
        )
        return x ^ (x >> np.uint64(31))


def uniform01(*parts: np.ndarray | int) -> np.ndarray:
    return (mix64(*parts) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
