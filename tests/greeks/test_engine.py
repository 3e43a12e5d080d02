"""The numpy engine on its own: round trips, impossible quotes, edge cases, units by finite differences."""

import warnings
from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greeks import engine
from greeks.engine import Model
from greeks.status import GreeksStatus
from tests.greeks.quotes import HOUR, Quotes, quotes_from_total_vol, stress_quotes

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NIFTY = 24_500.0
WEEK = 7.0 / 365.0
MODELS: tuple[Model, ...] = ("black76", "bs")


def _round_trip(q: Quotes) -> None:
    result = engine.implied_vol(q.price, *q.market, model=q.model)
    ok = result.status == GreeksStatus.OK
    # Only ITM quotes may fail: those whose time value is lost in the rounding of F - K.
    lost = ~ok
    assert np.all(result.status[lost] == GreeksStatus.BELOW_INTRINSIC)
    time_value = q.price - q.discounted_intrinsic()
    assert np.all(time_value[lost] <= 1e-14 * (q.forward() + q.strike)[lost])
    assert np.all(np.isnan(result.iv[lost]))
    reprice = engine.price_at_vol(*q.market, result.iv, model=q.model)
    assert np.all(np.abs(reprice[ok] - q.price[ok]) <= 1e-9)
    assert np.all(result.iterations[ok] <= 8)
    # OTM quotes carry no parity cancellation, so the IV itself comes back to ~1e-12 (ref target A2).
    otm = ok & q.is_otm()
    assert np.all(np.abs(result.iv[otm] / q.vol[otm] - 1.0) <= 1e-11)


@PROPERTY
@given(stress_quotes(underlying_range=(50.0, 200.0), max_abs_moneyness=3.0))
def test_stress_quotes_reprice_within_1e9_in_few_iterations(q: Quotes) -> None:
    _round_trip(q)


@PROPERTY
@given(stress_quotes(underlying_range=(1_000.0, 60_000.0), max_abs_moneyness=0.5))
def test_index_scale_quotes_reprice_within_1e9(q: Quotes) -> None:
    _round_trip(q)


def _spoil(q: Quotes, kinds: list[str], amounts: list[float]) -> tuple[list[np.ndarray], np.ndarray]:
    """Make each lane impossible in its own way; returns the inputs and the status each must get."""
    price, underlying, strike, t, rate = (a.copy() for a in (q.price, q.underlying, q.strike, q.t, q.rate))
    expected = np.full(price.size, GreeksStatus.OK, dtype=np.int8)
    intrinsic = q.discounted_intrinsic()
    discount = np.exp(-q.rate * q.t)
    bound = np.where(q.is_call, underlying if q.model == "bs" else underlying * discount, strike * discount)
    for i, (kind, amount) in enumerate(zip(kinds, amounts, strict=True)):
        field = {"price": price, "underlying": underlying, "strike": strike, "t": t, "rate": rate}
        if kind == "none":
            continue
        if kind == "below":
            price[i] = intrinsic[i] * (1.0 - amount)
            has_intrinsic = price[i] > 0.0
            expected[i] = GreeksStatus.BELOW_INTRINSIC if has_intrinsic else GreeksStatus.NONPOSITIVE_PRICE
        elif kind == "above":
            price[i] = bound[i] * (1.0 + amount)
            expected[i] = GreeksStatus.ABOVE_MAX
        elif kind == "nonpositive":
            price[i] = -amount * price[i]
            expected[i] = GreeksStatus.NONPOSITIVE_PRICE
        elif kind == "expired":
            t[i] = -amount * t[i]
            expected[i] = GreeksStatus.EXPIRED
        elif kind in ("nonpositive underlying", "nonpositive strike"):
            field[kind.split()[1]][i] *= -amount
            expected[i] = GreeksStatus.INVALID_INPUT
        else:  # "nan <field>" / "inf <field>"
            value, name = kind.split()
            field[name][i] = float(value)
            expected[i] = GreeksStatus.INVALID_INPUT
    return [price, underlying, strike, t, rate], expected


SPOILERS = [
    "none",
    "below",
    "above",
    "nonpositive",
    "expired",
    "nonpositive underlying",
    "nonpositive strike",
    *(f"{v} {f}" for v in ("nan", "inf", "-inf") for f in ("price", "underlying", "strike", "t", "rate")),
]


@PROPERTY
@given(stress_quotes(underlying_range=(1_000.0, 60_000.0), max_abs_moneyness=0.5), st.data())
def test_impossible_quotes_give_nan_and_their_reason(q: Quotes, data: st.DataObject) -> None:
    baseline = engine.implied_vol(q.price, *q.market, model=q.model).status
    kinds = data.draw(st.lists(st.sampled_from(SPOILERS), min_size=q.price.size, max_size=q.price.size))
    amounts = data.draw(st.lists(st.floats(0.0, 1.0), min_size=q.price.size, max_size=q.price.size))
    (price, underlying, strike, t, rate), expected = _spoil(q, kinds, amounts)
    expected = np.where(np.array(kinds) == "none", baseline, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning may escape either
        result = engine.implied_vol_and_greeks(price, underlying, strike, t, rate, q.is_call, model=q.model)
    np.testing.assert_array_equal(result.status, expected)
    failed = expected != GreeksStatus.OK
    for column in result[:6]:
        assert np.all(np.isnan(column[failed]))
        assert np.all(np.isfinite(column[~failed]))


def test_iteration_cap_is_reported_as_no_convergence() -> None:
    # sigma sqrt(T) = 2.9 starts from the large-s asymptote and needs more than one step.
    q = quotes_from_total_vol(*_market(np.full(4, 2.9), np.array([-0.4, -0.1, 0.1, 0.4])), model="black76")
    full = engine.implied_vol(q.price, *q.market)
    assert np.all(full.status == GreeksStatus.OK)
    assert np.all(full.iterations >= 2)
    capped = engine.implied_vol(q.price, *q.market, max_iterations=1)
    assert np.all(capped.status == GreeksStatus.NO_CONVERGENCE)
    assert np.all(np.isnan(capped.iv))
    assert np.all(capped.iterations == 1)


def _market(total_vol: np.ndarray, moneyness: np.ndarray, t: float = WEEK) -> tuple[np.ndarray, ...]:
    n = total_vol.size
    is_call = np.arange(n) % 2 == 0
    return total_vol, moneyness, np.full(n, NIFTY), np.full(n, t), np.full(n, 0.065), is_call


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("t", "vol"),
    [(HOUR, 0.13), (HOUR, 0.6), (WEEK, 0.13), (90.0 / 365.0, 0.15), (90.0 / 365.0, 0.9), (2.0, 0.3)],
    ids=["1h", "1h-high-vol", "7d", "90d", "90d-high-vol", "2y"],
)
def test_round_trip_from_deep_itm_to_deep_otm(model: Model, t: float, vol: float) -> None:
    strike = np.repeat(np.array([0.5, 0.7, 0.9, 0.98, 1.0, 1.02, 1.1, 1.3, 2.0]) * NIFTY, 2)
    n = strike.size
    is_call = np.tile([True, False], n // 2)
    price = engine.price_at_vol(NIFTY, strike, t, 0.065, is_call, vol, model=model)
    # An hour out, the far OTM wings are worth less than the smallest double: nothing to solve.
    worth = price > 0.0
    q = Quotes(
        price, np.full(n, NIFTY), strike, np.full(n, t), np.full(n, 0.065), is_call, np.full(n, vol), model
    )
    _round_trip(Quotes(*(a[worth] for a in q[:7]), model))
    assert worth.sum() >= n // 2


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("is_call", [True, False])
def test_price_exactly_intrinsic_is_below_intrinsic_and_bound_is_above_max(
    model: Model, is_call: bool
) -> None:
    underlying, t, rate = NIFTY, WEEK, 0.065
    discount = np.exp(-rate * t)
    strike = np.array([20_000.0, 24_000.0, 29_000.0])
    spot = underlying if model == "bs" else underlying * discount
    intrinsic = np.maximum((spot - strike * discount) * (1.0 if is_call else -1.0), 0.0)
    bound = np.full(3, spot) if is_call else strike * discount
    itm = intrinsic > 0.0
    result = engine.implied_vol_and_greeks(
        intrinsic[itm], underlying, strike[itm], t, rate, is_call, model=model
    )
    assert np.all(result.status == GreeksStatus.BELOW_INTRINSIC)
    assert np.all(np.isnan(result.iv))
    result = engine.implied_vol_and_greeks(bound, underlying, strike, t, rate, is_call, model=model)
    assert np.all(result.status == GreeksStatus.ABOVE_MAX)
    assert np.all(np.isnan(result.delta))
    just_inside = engine.implied_vol(bound * (1.0 - 1e-9), underlying, strike, t, rate, is_call, model=model)
    assert np.all(just_inside.status == GreeksStatus.OK)


@pytest.mark.parametrize(
    ("price", "underlying", "strike", "t", "expected"),
    [
        (np.nan, NIFTY, NIFTY, WEEK, GreeksStatus.INVALID_INPUT),
        (100.0, np.nan, NIFTY, WEEK, GreeksStatus.INVALID_INPUT),
        (100.0, NIFTY, np.inf, WEEK, GreeksStatus.INVALID_INPUT),
        (100.0, NIFTY, NIFTY, np.nan, GreeksStatus.INVALID_INPUT),
        (100.0, 0.0, NIFTY, WEEK, GreeksStatus.INVALID_INPUT),
        (100.0, NIFTY, -5.0, WEEK, GreeksStatus.INVALID_INPUT),
        (np.nan, NIFTY, NIFTY, 0.0, GreeksStatus.INVALID_INPUT),
        (100.0, NIFTY, NIFTY, 0.0, GreeksStatus.EXPIRED),
        (100.0, NIFTY, NIFTY, -HOUR, GreeksStatus.EXPIRED),
        (0.0, NIFTY, NIFTY, 0.0, GreeksStatus.EXPIRED),
        (0.0, NIFTY, NIFTY, WEEK, GreeksStatus.NONPOSITIVE_PRICE),
        (-3.0, NIFTY, 20_000.0, WEEK, GreeksStatus.NONPOSITIVE_PRICE),
        (4_000.0, NIFTY, 20_000.0, WEEK, GreeksStatus.BELOW_INTRINSIC),
        (30_000.0, NIFTY, 20_000.0, WEEK, GreeksStatus.ABOVE_MAX),
    ],
)
def test_status_precedence_for_scalars(
    price: float, underlying: float, strike: float, t: float, expected: GreeksStatus
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = engine.implied_vol_and_greeks(price, underlying, strike, t, 0.065, True)
    assert result.status.shape == ()
    assert result.status == expected
    assert all(np.isnan(column) for column in result[:6])


def test_nan_rate_is_invalid() -> None:
    result = engine.implied_vol_and_greeks(100.0, NIFTY, NIFTY, WEEK, np.nan, True)
    assert result.status == GreeksStatus.INVALID_INPUT


def test_mixed_validity_leaves_valid_lanes_untouched() -> None:
    strike = np.array([24_000.0, 24_500.0, 25_000.0, 25_500.0, 26_000.0, 23_000.0])
    is_call = np.array([False, True, True, False, True, False])
    price = engine.price_at_vol(NIFTY, strike, WEEK, 0.065, is_call, 0.14)
    spoiled = price.copy()
    spoiled[1], spoiled[3] = np.nan, 0.0
    t = np.array([WEEK, WEEK, WEEK, WEEK, -1.0, WEEK])
    mixed = engine.implied_vol_and_greeks(spoiled, NIFTY, strike, t, 0.065, is_call)
    expected = [0, GreeksStatus.INVALID_INPUT, 0, GreeksStatus.NONPOSITIVE_PRICE, GreeksStatus.EXPIRED, 0]
    np.testing.assert_array_equal(mixed.status, expected)
    valid = [0, 2, 5]
    alone = engine.implied_vol_and_greeks(price[valid], NIFTY, strike[valid], WEEK, 0.065, is_call[valid])
    for got, want in zip(mixed[:6], alone[:6], strict=True):
        np.testing.assert_array_equal(got[valid], want)
    np.testing.assert_allclose(mixed.iv[valid], 0.14, rtol=1e-12)


def test_scalars_broadcast_and_shapes_are_kept() -> None:
    strike = np.array([[24_000.0, 24_500.0, 25_000.0], [23_500.0, 24_500.0, 25_500.0]])
    is_call = np.array([True, False, True])
    price = engine.price_at_vol(NIFTY, strike, WEEK, 0.065, is_call, 0.13)
    grid = engine.implied_vol_and_greeks(price, NIFTY, strike, WEEK, 0.065, is_call)
    assert all(column.shape == (2, 3) for column in grid)
    one = engine.implied_vol_and_greeks(float(price[1, 2]), NIFTY, 25_500.0, WEEK, 0.065, True)
    assert all(column.shape == () for column in one)
    assert one.iv == grid.iv[1, 2]
    assert one.theta == grid.theta[1, 2]


def test_calls_and_puts_mix_in_one_call() -> None:
    strike = np.full(4, 24_800.0)
    is_call = np.array([True, False, False, True])
    vol = np.array([0.12, 0.12, 0.2, 0.2])
    price = engine.price_at_vol(NIFTY, strike, WEEK, 0.065, is_call, vol)
    result = engine.implied_vol_and_greeks(price, NIFTY, strike, WEEK, 0.065, is_call)
    np.testing.assert_allclose(result.iv, vol, rtol=1e-10)
    assert np.all(result.delta[is_call] > 0.0) and np.all(result.delta[~is_call] < 0.0)
    # Same strike and vol: gamma and vega agree across CE and PE, delta differs by the discount.
    np.testing.assert_allclose(result.gamma[[0, 3]], result.gamma[[1, 2]], rtol=1e-12)
    np.testing.assert_allclose(result.vega[[0, 3]], result.vega[[1, 2]], rtol=1e-12)
    np.testing.assert_allclose(result.delta[[0, 3]] - result.delta[[1, 2]], np.exp(-0.065 * WEEK), rtol=1e-12)


def test_batches_larger_than_a_chunk_match_chunk_sized_runs() -> None:
    rng = np.random.default_rng(3)
    n = 2 * engine.CHUNK + 7
    s, m = np.exp(rng.uniform(np.log(1e-3), np.log(2.0), n)), rng.uniform(-0.3, 0.3, n)
    q = quotes_from_total_vol(s, m, np.full(n, NIFTY), np.full(n, WEEK), np.full(n, 0.065), rng.random(n) < 0.5,
                              "black76")  # fmt: skip
    q.price[::97] = np.nan
    whole = engine.implied_vol_and_greeks(q.price, *q.market)
    for start in (0, engine.CHUNK - 3, n - 10):
        part = slice(start, start + 10)
        piece = engine.implied_vol_and_greeks(q.price[part], *(a[part] for a in q.market))
        for got, want in zip(whole, piece, strict=True):
            np.testing.assert_array_equal(got[part], want)


def test_unknown_model_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="model"):
        engine.implied_vol_and_greeks(100.0, NIFTY, NIFTY, WEEK, 0.065, True, model="black-scholes")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize("strike", [22_000.0, 24_400.0, 26_000.0])
def test_greeks_are_the_derivatives_of_the_price_in_the_stated_units(
    model: Model, is_call: bool, strike: float
) -> None:
    u, t, r, vol = NIFTY, 20.0 / 365.0, 0.065, 0.16

    def value(du: float = 0.0, dt: float = 0.0, dr: float = 0.0, dvol: float = 0.0) -> float:
        return float(engine.price_at_vol(u + du, strike, t + dt, r + dr, is_call, vol + dvol, model=model))

    hd, h, ht, hr, hv = 1e-5 * u, 1e-4 * u, 1e-6, 1e-6, 1e-6
    greeks = engine.greeks_at_vol(u, strike, t, r, is_call, vol, model=model)
    # Delta and gamma per unit of underlying, theta per calendar day with the underlying held,
    # vega per vol point and rho per percentage point of rate.
    assert greeks.delta == pytest.approx((value(hd) - value(-hd)) / (2 * hd), rel=1e-6)
    assert greeks.gamma == pytest.approx((value(h) - 2 * value() + value(-h)) / h**2, rel=1e-4)
    assert greeks.theta == pytest.approx(-(value(dt=ht) - value(dt=-ht)) / (2 * ht) / 365.0, rel=1e-6)
    assert greeks.vega == pytest.approx((value(dvol=hv) - value(dvol=-hv)) / (2 * hv) / 100.0, rel=1e-6)
    assert greeks.rho == pytest.approx((value(dr=hr) - value(dr=-hr)) / (2 * hr) / 100.0, rel=1e-6)


def test_black76_on_the_forward_matches_black_scholes_on_spot() -> None:
    strike = np.array([23_000.0, 24_500.0, 26_000.0])
    is_call = np.array([True, False, True])
    t, r = 30.0 / 365.0, 0.065
    forward, discount = NIFTY * np.exp(r * t), np.exp(-r * t)
    price = engine.price_at_vol(NIFTY, strike, t, r, is_call, 0.14, model="bs")
    np.testing.assert_allclose(engine.price_at_vol(forward, strike, t, r, is_call, 0.14), price, rtol=1e-13)
    bs = engine.implied_vol_and_greeks(price, NIFTY, strike, t, r, is_call, model="bs")
    b76 = engine.implied_vol_and_greeks(price, forward, strike, t, r, is_call)
    np.testing.assert_allclose(b76.iv, bs.iv, rtol=1e-12)
    np.testing.assert_allclose(b76.delta, discount * bs.delta, rtol=1e-12)
    np.testing.assert_allclose(b76.gamma, discount**2 * bs.gamma, rtol=1e-12)
    np.testing.assert_allclose(b76.vega, bs.vega, rtol=1e-12)


def test_put_call_parity_of_prices() -> None:
    strike = np.linspace(20_000.0, 29_000.0, 10)
    t, r = WEEK, 0.065
    call = engine.price_at_vol(NIFTY, strike, t, r, True, 0.2)
    put = engine.price_at_vol(NIFTY, strike, t, r, False, 0.2)
    np.testing.assert_allclose(call - put, np.exp(-r * t) * (NIFTY - strike), atol=1e-9)


@pytest.mark.parametrize(
    "bad", [{"vol": 0.0}, {"vol": -0.1}, {"vol": np.nan}, {"t": 0.0}, {"strike": np.inf}]
)
def test_price_and_greeks_at_an_unusable_vol_are_nan(bad: dict[str, float]) -> None:
    args = {
        "underlying": NIFTY,
        "strike": 24_000.0,
        "t_years": WEEK,
        "rate": 0.065,
        "is_call": True,
        "vol": 0.2,
    }
    args.update({("t_years" if k == "t" else k): v for k, v in bad.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(engine.price_at_vol(**args))
        assert all(np.isnan(g) for g in engine.greeks_at_vol(**args))


def test_year_fraction_runs_to_1530_ist_on_expiry_day() -> None:
    # 09:30 IST on expiry day = 04:00 UTC: six hours to the 15:30 IST close.
    now = datetime(2026, 9, 1, 4, 0, tzinfo=UTC).timestamp()
    assert engine.year_fraction(now, date(2026, 9, 1)) == pytest.approx(6.0 / (365 * 24), rel=1e-12)
    assert engine.year_fraction(now, date(2026, 9, 8)) == pytest.approx((7 * 24 + 6) / (365 * 24), rel=1e-12)
    after_close = datetime(2026, 9, 1, 10, 0, 1, tzinfo=UTC).timestamp()
    assert engine.year_fraction(after_close, date(2026, 9, 1)) < 0.0
    assert engine.implied_vol(50.0, NIFTY, NIFTY, engine.year_fraction(after_close, date(2026, 9, 1)), 0.065,
                              True).status == GreeksStatus.EXPIRED  # fmt: skip
