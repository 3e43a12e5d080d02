"""The engine against mibian 0.1.3, the mandated reference, and the backend switch."""

import time

import numpy as np
import pytest

from greeks import backends, engine, reference
from greeks.engine import Model
from greeks.status import GreeksStatus
from tests.greeks.quotes import HOUR, Quotes, nse_batch

MODELS: tuple[Model, ...] = ("black76", "bs")
GREEKS = ("delta", "gamma", "theta", "vega", "rho")
RELATIVE = 1e-9
# Floor for Greeks that are ~0. Each Greek is built from terms of a natural size M (see
# _term_scales), and mibian's Black-76 mapping subtracts two of them for theta and rho, so
# rounding leaves an absolute error of a few ulps of M whatever the value: in the deep wings
# (an hour out, 20 % OTM: rho ~ 1e-250) that is a huge relative error on a value that is zero
# to working precision. 1e-14 M is ~45 ulps of M; a unit or formula slip is a factor or a
# whole term, orders of magnitude above it. Measured: ours and mibian differ by at most
# 2e-12 relative wherever |value| > 1e-6 M; only a few deep-wing rho values need the floor.
FLOOR = 1e-14


def _term_scales(q: Quotes) -> dict[str, np.ndarray]:
    spot = q.underlying if q.model == "bs" else q.underlying * np.exp(-q.rate * q.t)
    sqrt_t = np.sqrt(q.t)
    return {
        "price": spot + q.strike,
        "delta": np.ones_like(spot),
        "gamma": 1.0 / (spot * q.vol * sqrt_t),
        "theta": (spot * q.vol / sqrt_t + np.abs(q.rate) * (q.strike + spot)) / 365.0,
        "vega": spot * sqrt_t / 100.0,
        "rho": (q.strike + spot) * q.t / 100.0,
    }


def _edge_grid(model: Model) -> Quotes:
    """1 hour, 1 day and 90 days; strikes from 20 % ITM to 20 % OTM; low and high vol; CE and PE."""
    t, moneyness, vol, is_call = (
        a.ravel()
        for a in np.meshgrid(
            [HOUR, 1.0 / 365.0, 90.0 / 365.0],
            [0.8, 0.9, 0.97, 1.0, 1.03, 1.1, 1.2],
            [0.08, 0.5],
            [True, False],
            indexing="ij",
        )
    )
    underlying = np.full(t.size, 24_500.0)
    strike, rate, calls = underlying * moneyness, np.full(t.size, 0.065), is_call.astype(bool)
    price = engine.price_at_vol(underlying, strike, t, rate, calls, vol, model=model)
    return Quotes(price, underlying, strike, t, rate, calls, vol, model)


def _join(a: Quotes, b: Quotes) -> Quotes:
    return Quotes(*(np.concatenate([x, y]) for x, y in zip(a[:7], b[:7], strict=True)), a.model)


@pytest.mark.parametrize("model", MODELS)
def test_greeks_and_price_at_the_same_vol_equal_mibian(model: Model) -> None:
    q = _join(nse_batch(np.random.default_rng(11), 1500, model), _edge_grid(model))
    ours = engine.greeks_at_vol(*q.market, q.vol, model=model)
    mib = reference.greeks_at_vol(*q.market, q.vol, model=model)
    scales = _term_scales(q)
    for name in GREEKS:
        got, want = getattr(ours, name), getattr(mib, name)
        assert np.all(np.isfinite(got)) and np.all(np.isfinite(want)), name
        error = np.abs(got - want)
        assert np.all(error <= RELATIVE * np.abs(want) + FLOOR * scales[name]), name
        # The floor is the exception: nearly every value meets the relative bound on its own.
        assert np.mean(error <= RELATIVE * np.abs(want)) >= 0.99, name
    got, want = (
        engine.price_at_vol(*q.market, q.vol, model=model),
        reference.price_at_vol(*q.market, q.vol, model=model),
    )
    assert np.all(np.abs(got - want) <= RELATIVE * want + FLOOR * scales["price"])


def _well_posed_quotes(model: Model, tick: float, seed: int, n: int = 60) -> Quotes:
    """Tick-rounded quotes with at least a tick of time value and vol inside mibian's range."""
    q = nse_batch(np.random.default_rng(seed), 20 * n, model)
    quote = np.round(q.price / tick) * tick
    keep = (quote >= tick) & (quote - q.discounted_intrinsic() >= tick) & (q.vol <= 1.0)
    keep &= np.cumsum(keep) <= n
    return Quotes(quote[keep], *(a[keep] for a in q[1:7]), model)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tick", [0.1, 0.05, 0.01, 1e-4], ids=["1dp", "nse-tick", "2dp", "4dp"])
def test_implied_vols_agree_with_mibian_in_price_space(model: Model, tick: float) -> None:
    q = _well_posed_quotes(model, tick, seed=int(tick * 1e4))
    ours = engine.implied_vol_and_greeks(q.price, *q.market, model=model)
    mib = reference.implied_vol_and_greeks(q.price, *q.market, model=model)
    assert np.all(ours.status == GreeksStatus.OK)
    assert np.all(mib.status == GreeksStatus.OK)
    # mibian stops once its price, rounded to the decimals str() prints for the quote, equals it.
    tolerance = np.array([0.5 * 10.0 ** -reference.printed_decimals(round(p, 6)) for p in q.price])
    mib_price = engine.price_at_vol(*q.market, mib.iv, model=model)
    assert np.all(np.abs(mib_price - q.price) <= tolerance * (1 + 1e-9))
    our_price = engine.price_at_vol(*q.market, ours.iv, model=model)
    assert np.all(np.abs(our_price - q.price) <= 1e-9)
    # So the IVs differ by at most that tolerance over vega (ref target A4), and no more.
    vega = np.minimum(ours.vega, engine.greeks_at_vol(*q.market, mib.iv, model=model).vega) * 100.0
    assert np.all(np.abs(ours.iv - mib.iv) <= tolerance / vega + 1e-9)
    # mibian's Greeks at its own IV are the engine's Greeks at that IV: only the IVs differ.
    at_mib_iv = engine.greeks_at_vol(*q.market, mib.iv, model=model)
    scales = _term_scales(q._replace(vol=mib.iv))
    for name in GREEKS:
        error = np.abs(getattr(at_mib_iv, name) - getattr(mib, name))
        assert np.all(error <= RELATIVE * np.abs(getattr(mib, name)) + FLOOR * scales[name]), name


def test_reference_refuses_quotes_that_would_trap_mibian() -> None:
    forward, t, rate = 24_500.0, 7.0 / 365.0, 0.065
    discount = np.exp(-rate * t)
    strike = np.array([20_000.0, 24_500.0, 30_000.0, 24_500.0, 24_500.0, 24_500.0])
    is_call = np.array([True, True, True, True, False, True])
    price = np.array(
        [
            discount * (forward - 20_000.0) - 0.05,  # deep ITM quoted below intrinsic
            forward * discount,  # at the no-arbitrage bound
            5e-05,  # str() prints 5e-05: mibian raises IndexError
            forward * discount * (1.0 - 1e-7),  # needs sigma above mibian's 500 %
            np.nan,
            120.0,
        ]
    )
    t_years = np.array([t, t, t, t, t, 0.0])
    start = time.perf_counter()
    result = reference.implied_vol_and_greeks(price, forward, strike, t_years, rate, is_call)
    elapsed = time.perf_counter() - start
    expected = [
        GreeksStatus.BELOW_INTRINSIC,
        GreeksStatus.ABOVE_MAX,
        GreeksStatus.NO_CONVERGENCE,
        GreeksStatus.NO_CONVERGENCE,
        GreeksStatus.INVALID_INPUT,
        GreeksStatus.EXPIRED,
    ]
    np.testing.assert_array_equal(result.status, expected)
    assert all(np.all(np.isnan(column)) for column in result[:6])
    # Each of the first four costs mibian 10,000 bisection steps (~0.9 s) if it is handed over.
    assert elapsed < 2.0
    # The engine solves the two quotes mibian cannot take.
    ours = engine.implied_vol(price[2:4], forward, strike[2:4], t, rate, is_call[2:4])
    assert np.all(ours.status == GreeksStatus.OK)


def test_backend_switch_by_name() -> None:
    assert backends.implied_vol_and_greeks_for() is engine.implied_vol_and_greeks
    assert backends.implied_vol_and_greeks_for("numpy") is engine.implied_vol_and_greeks
    assert backends.implied_vol_and_greeks_for("mibian") is reference.implied_vol_and_greeks
    with pytest.raises(ValueError, match="numpy, mibian"):
        backends.implied_vol_and_greeks_for("vollib")


def test_both_backends_take_the_same_arguments_and_shapes() -> None:
    strike = np.array([[24_000.0, 24_500.0], [25_000.0, 40_000.0]])
    is_call = np.array([[False, True], [True, True]])
    price = np.round(engine.price_at_vol(24_500.0, strike, 7.0 / 365.0, 0.065, is_call, 0.13), 2)
    price[1, 1] = 0.0
    results = [
        backends.implied_vol_and_greeks_for(name)(price, 24_500.0, strike, 7.0 / 365.0, 0.065, is_call)
        for name in backends.BACKENDS
    ]
    numpy_result, mibian_result = results
    assert all(column.shape == (2, 2) for result in results for column in result)
    np.testing.assert_array_equal(numpy_result.status, mibian_result.status)
    assert numpy_result.status[1, 1] == GreeksStatus.NONPOSITIVE_PRICE
    np.testing.assert_allclose(numpy_result.iv[:, 0], mibian_result.iv[:, 0], atol=1e-4)
