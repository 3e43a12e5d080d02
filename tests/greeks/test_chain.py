"""chain_iv_from_otm: one IV per strike from the OTM leg, assigned to both legs."""

import numpy as np

from greeks import engine
from greeks.status import GreeksStatus

SPOT, STEP, ATM_VOL, RATE, TICK = 24_500.0, 50.0, 0.13, 0.065, 0.05


def _chain(days: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """One expiry of NIFTY: forward, t, 101 strikes around ATM and the smile they are priced on."""
    t = days / 365.0
    forward = SPOT * np.exp(RATE * t)
    strike = SPOT + STEP * np.arange(-50, 51)
    z = np.log(strike / forward) / (ATM_VOL * np.sqrt(t))
    vol = np.clip(ATM_VOL * (1.0 - 0.08 * z + 0.02 * z * z), 0.6 * ATM_VOL, 4.0 * ATM_VOL)
    return forward, t, strike, vol


def _prices(forward: float, t: float, strike: np.ndarray, vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    call = engine.price_at_vol(forward, strike, t, RATE, True, vol)
    put = engine.price_at_vol(forward, strike, t, RATE, False, vol)
    return call, put


def test_exact_chain_recovers_the_smile_from_the_otm_legs() -> None:
    forward, t, strike, vol = _chain(7.25)
    call, put = _prices(forward, t, strike, vol)
    chain = engine.chain_iv_from_otm(call, put, forward, strike, t, RATE)
    assert np.all(chain.status == GreeksStatus.OK)
    np.testing.assert_array_equal(chain.from_call, strike >= forward)
    np.testing.assert_allclose(chain.iv, vol, rtol=1e-11)


def test_tick_chain_gets_an_iv_where_the_itm_leg_alone_has_none() -> None:
    forward, t, strike, vol = _chain(1.25)
    exact_call, exact_put = _prices(forward, t, strike, vol)
    call, put = (np.maximum(np.round(p / TICK) * TICK, TICK) for p in (exact_call, exact_put))
    chain = engine.chain_iv_from_otm(call, put, forward, strike, t, RATE)
    assert np.all(chain.status == GreeksStatus.OK)
    itm_is_call = ~chain.from_call
    itm_price = np.where(itm_is_call, call, put)
    own = engine.implied_vol(itm_price, forward, strike, t, RATE, itm_is_call)
    # Deep ITM ticks at or below intrinsic: no IV of their own, but the strike still has one.
    assert np.sum(own.status == GreeksStatus.BELOW_INTRINSIC) >= 5
    # The IV reprices the OTM quote exactly and the ITM quote to its two tick roundings (parity).
    otm_price = np.where(chain.from_call, call, put)
    np.testing.assert_allclose(
        engine.price_at_vol(forward, strike, t, RATE, chain.from_call, chain.iv), otm_price, atol=1e-9
    )
    itm_model = engine.price_at_vol(forward, strike, t, RATE, itm_is_call, chain.iv)
    unfloored = np.where(chain.from_call, exact_call, exact_put) >= TICK
    assert unfloored.sum() > 30
    assert np.all(np.abs(itm_model - itm_price)[unfloored] <= TICK + 1e-9)


def test_ce_and_pe_ivs_agree_with_the_strike_iv_on_well_posed_quotes() -> None:
    forward, t, strike, vol = _chain(28.25)
    call, put = _prices(forward, t, strike, vol)
    chain = engine.chain_iv_from_otm(call, put, forward, strike, t, RATE)
    for is_call, price in ((True, call), (False, put)):
        own = engine.implied_vol(price, forward, strike, t, RATE, is_call)
        intrinsic = np.exp(-RATE * t) * np.maximum((forward - strike) * (1 if is_call else -1), 0.0)
        well_posed = (own.status == GreeksStatus.OK) & (price - intrinsic >= TICK)
        assert well_posed.sum() > 60
        # R3: CE and PE IVs at a strike agree to <= 0.01 vol points; here far closer.
        assert np.all(np.abs(own.iv[well_posed] - chain.iv[well_posed]) <= 1e-4 * 1e-2)


def test_at_the_money_strike_uses_the_call_and_bad_legs_stay_local() -> None:
    forward, t = 24_500.0, 7.0 / 365.0
    strike = np.array([24_400.0, 24_500.0, 24_600.0, 24_700.0])
    vol = np.full(4, 0.13)
    call, put = _prices(forward, t, strike, vol)
    call[2] = np.nan  # the OTM leg at 24,600 is missing
    put[1] = np.nan  # the ITM leg at the money is irrelevant
    call[3] = 0.0
    chain = engine.chain_iv_from_otm(call, put, forward, strike, t, RATE)
    np.testing.assert_array_equal(chain.from_call, [False, True, True, True])
    expected = [GreeksStatus.OK, GreeksStatus.OK, GreeksStatus.INVALID_INPUT, GreeksStatus.NONPOSITIVE_PRICE]
    np.testing.assert_array_equal(chain.status, expected)
    np.testing.assert_allclose(chain.iv[:2], 0.13, rtol=1e-11)
    assert np.all(np.isnan(chain.iv[2:]))


def test_chain_broadcasts_scalar_forward_time_and_rate_over_a_strike_grid() -> None:
    forward, t, strike, vol = _chain(91.25)
    call, put = _prices(forward, t, strike, vol)
    grid = engine.chain_iv_from_otm(
        call.reshape(1, -1), put.reshape(1, -1), forward, strike.reshape(1, -1), t, RATE
    )
    assert grid.iv.shape == grid.status.shape == grid.from_call.shape == (1, strike.size)
    np.testing.assert_allclose(grid.iv[0], vol, rtol=1e-11)
