"""Option quotes for the greeks tests: hypothesis strategies and seeded random batches."""

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

from greeks.engine import Model, price_at_vol

FloatArray = npt.NDArray[np.float64]

HOUR = 1.0 / (365.0 * 24.0)
MINUTE = HOUR / 60.0


class Quotes(NamedTuple):
    """A batch of options priced from a known volatility."""

    price: FloatArray
    underlying: FloatArray
    strike: FloatArray
    t: FloatArray
    rate: FloatArray
    is_call: npt.NDArray[np.bool_]
    vol: FloatArray
    model: Model

    @property
    def market(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
        return self.underlying, self.strike, self.t, self.rate, self.is_call

    def forward(self) -> FloatArray:
        return self.underlying * np.exp(self.rate * self.t) if self.model == "bs" else self.underlying

    def discounted_intrinsic(self) -> FloatArray:
        sign = np.where(self.is_call, 1.0, -1.0)
        return np.exp(-self.rate * self.t) * np.maximum(sign * (self.forward() - self.strike), 0.0)

    def is_otm(self) -> npt.NDArray[np.bool_]:
        forward = self.forward()
        return np.where(self.is_call, self.strike >= forward, self.strike <= forward)


def quotes_from_total_vol(
    total_vol: FloatArray,
    moneyness: FloatArray,
    underlying: FloatArray,
    t: FloatArray,
    rate: FloatArray,
    is_call: npt.NDArray[np.bool_],
    model: Model,
) -> Quotes:
    """Options with sigma sqrt(t) = total_vol and ln(F/K) = moneyness, priced by the engine."""
    forward = underlying * np.exp(rate * t) if model == "bs" else underlying
    strike = forward * np.exp(-moneyness)
    vol = total_vol / np.sqrt(t)
    price = price_at_vol(underlying, strike, t, rate, is_call, vol, model=model)
    return Quotes(price, underlying, strike, t, rate, is_call, vol, model)


@st.composite
def stress_quotes(draw: st.DrawFn, underlying_range: tuple[float, float], max_abs_moneyness: float) -> Quotes:
    """Total vol log-uniform on [1e-3, 3], |ln F/K| <= min(max_abs_moneyness, 8 s) (ref §3c)."""
    n = draw(st.integers(1, 40))
    log_s = np.array(draw(st.lists(st.floats(np.log(1e-3), np.log(3.0)), min_size=n, max_size=n)))
    unit = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)))
    lo, hi = underlying_range
    underlying = np.array(draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n)))
    t = np.array(draw(st.lists(st.floats(MINUTE, 2.0), min_size=n, max_size=n)))
    rate = np.array(draw(st.lists(st.floats(-0.01, 0.15), min_size=n, max_size=n)))
    is_call = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    model = draw(st.sampled_from(["black76", "bs"]))
    s = np.exp(log_s)
    moneyness = unit * np.minimum(max_abs_moneyness, 8.0 * s)
    return quotes_from_total_vol(s, moneyness, underlying, t, rate, is_call, model)


def nse_batch(rng: np.random.Generator, n: int, model: Model) -> Quotes:
    """NIFTY/BANKNIFTY-like options: strikes within +-20 %, 1 hour to 120 days, vol 5-100 %."""
    underlying = rng.choice([24_500.0, 52_000.0], n) * rng.uniform(0.95, 1.05, n)
    strike = np.round(underlying * rng.uniform(0.8, 1.2, n) / 50.0) * 50.0
    t = np.exp(rng.uniform(np.log(HOUR), np.log(120.0 / 365.0), n))
    rate = rng.uniform(0.0, 0.12, n)
    vol = rng.uniform(0.05, 1.0, n)
    is_call = rng.random(n) < 0.5
    price = price_at_vol(underlying, strike, t, rate, is_call, vol, model=model)
    return Quotes(price, underlying, strike, t, rate, is_call, vol, model)
