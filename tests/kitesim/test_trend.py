"""The trending path (kitesim/trend.py): the drift, its noise bound, determinism, the chain that holds it."""

import time
from collections.abc import Sequence
from datetime import date

import numpy as np
import pytest
from kiteconnect import KiteConnect

from kitesim.market import market_build
from kitesim.paths import session_open_epoch
from kitesim.testing import KitesimThread
from kitesim.trend import NiftyTrend, TrendSpec
from kitesim.universe import UNDERLYINGS, SimInstrument

SESSION = date(2026, 8, 17)
OPEN = session_open_epoch(SESSION)
ROUNDING = 0.005
NIFTY_STEP = 50.0


def _levels(spec: TrendSpec, minutes: np.ndarray, seed: int = 7, day: date = SESSION) -> np.ndarray:
    return NiftyTrend(seed, spec).session(day).at(session_open_epoch(day) + 60.0 * minutes)


def _strikes(rows: Sequence[SimInstrument], underlying: str) -> list[float]:
    return sorted({i.strike for i in rows if i.underlying == underlying and i.strike})


# --- the path, pure -----------------------------------------------------------------------------


def test_level_at_minute_k_is_the_open_plus_k_times_the_rate_within_the_noise() -> None:
    spec = TrendSpec(points_per_min=60.0, reverse_minutes=0, noise_points=5.0)
    minutes = np.arange(0.0, 375.0)
    levels = _levels(spec, minutes)
    assert np.max(np.abs(levels - (24_800.0 + 60.0 * minutes))) <= 5.0 + ROUNDING
    assert levels[-1] > 24_800.0 + 60.0 * 370  # a one-way walk: still climbing at the end of the session


def test_every_instant_lies_within_the_noise_of_the_drift() -> None:
    spec = TrendSpec(points_per_min=45.0, reverse_minutes=7, noise_points=3.0)
    minutes = np.arange(0.0, 375.0, 1.0 / 240.0)  # every quarter second
    assert np.max(np.abs(_levels(spec, minutes) - spec.expected(minutes))) <= 3.0 + ROUNDING


def test_reversal_goes_up_for_k_minutes_then_back_down() -> None:
    spec = TrendSpec(points_per_min=60.0, reverse_minutes=20, noise_points=0.0)
    levels = _levels(spec, np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]))
    assert levels.tolist() == [24_800.0, 25_400.0, 26_000.0, 25_400.0, 24_800.0, 25_400.0, 26_000.0]


def test_a_negative_rate_walks_down() -> None:
    spec = TrendSpec(points_per_min=-30.0, reverse_minutes=0, noise_points=0.0)
    assert _levels(spec, np.array([0.0, 100.0])).tolist() == [24_800.0, 21_800.0]


def test_noise_is_zero_mean_and_uses_its_bound() -> None:
    spec = TrendSpec(reverse_minutes=0, noise_points=5.0)
    path = NiftyTrend(7, spec).session(SESSION)
    noise = path.levels - spec.expected((path.times - OPEN) / 60.0)
    assert abs(float(noise.mean())) < 0.5
    assert float(noise.max()) > 4.5 and float(noise.min()) < -4.5


def test_deterministic_for_a_seed_and_different_across_seeds_and_days() -> None:
    spec = TrendSpec()
    a, b = NiftyTrend(7, spec).session(SESSION), NiftyTrend(7, spec).session(SESSION)
    assert np.array_equal(a.times, b.times) and np.array_equal(a.levels, b.levels)
    assert not np.array_equal(a.levels, NiftyTrend(8, spec).session(SESSION).levels)
    next_day = NiftyTrend(7, spec).session(date(2026, 8, 18))
    assert not np.array_equal(a.levels, next_day.levels)
    assert next_day.open == pytest.approx(spec.level, abs=spec.noise_points + ROUNDING)


def test_crosses_twenty_strikes_of_fifty_in_the_configured_minutes() -> None:
    spec = TrendSpec(points_per_min=60.0, reverse_minutes=20)
    atm = np.round(_levels(spec, np.arange(0.0, 17.0, 1.0 / 60.0)) / NIFTY_STEP)
    assert np.unique(atm).size >= 21  # 20 crossings in the first 17 simulated minutes
    assert np.all(np.diff(atm) >= -1)  # the noise never drags the ATM back by more than one strike


def test_continuous_no_jump_between_half_second_samples() -> None:
    spec = TrendSpec(points_per_min=60.0, reverse_minutes=20, noise_points=5.0)
    minutes = np.arange(0.0, 375.0, 0.5 / 60.0)
    steps = np.abs(np.diff(_levels(spec, minutes)))
    # Knots are at least 5 s apart (:55 to :00): the noise adds at most 2 * noise / 5 points a second.
    bound = 0.5 * (60.0 / 60.0 + 2.0 * 5.0 / 5.0) + 2 * ROUNDING
    assert float(steps.max()) <= bound


def test_path_knots_sit_on_the_replay_bar_grid() -> None:
    path = NiftyTrend(7).session(SESSION)
    offsets = np.mod(path.times[:-1] - OPEN, 60.0)
    assert set(offsets.tolist()) == {0.0, 15.0, 35.0, 55.0}
    assert path.times[-1] - OPEN == 22_500.0


@pytest.mark.parametrize(
    "options",
    [
        {"noise_points": -1.0},
        {"reverse_minutes": -5},
        {"reverse_minutes": 7.5},
        {"points_per_min": float("nan")},
        {"points_per_min": -100.0, "reverse_minutes": 0},  # 24,800 - 37,500 is below zero
    ],
)
def test_spec_refuses_values_that_make_no_path(options: dict[str, float | int]) -> None:
    with pytest.raises(ValueError, match="trend"):
        TrendSpec(**options)


# --- the market on it ---------------------------------------------------------------------------


def test_market_follows_the_trend_and_derives_banknifty_and_sensex() -> None:
    spec = TrendSpec(points_per_min=60.0, reverse_minutes=20, noise_points=5.0)
    market = market_build(7, OPEN, path="trend", trend=spec)
    for minute in (0, 7, 15, 20, 33):
        market.advance(OPEN + 60.0 * minute)
        nifty = market.spot("NIFTY")
        assert abs(nifty - spec.expected(minute)) <= 5.0 + ROUNDING
        for name in ("BANKNIFTY", "SENSEX"):
            assert market.spot(name) / (nifty * UNDERLYINGS[name].nifty_ratio) == pytest.approx(1.0, abs=1e-3)
        index = market.universe.by_key("NSE:NIFTY 50")
        assert index is not None
        assert market.quote(index.instrument_token).last_price == pytest.approx(nifty, abs=1.0)


def test_option_prices_follow_the_trend() -> None:
    market = market_build(7, OPEN, path="trend", trend=TrendSpec(points_per_min=60.0))
    call = next(
        i
        for i in sorted(market.universe.all(), key=lambda i: (i.expiry or SESSION, i.strike))
        if i.underlying == "NIFTY" and i.instrument_type == "CE" and i.strike == 24_800.0
    )
    market.advance(OPEN + 30.0)
    at_the_money = market.quote(call.instrument_token).last_price
    market.advance(OPEN + 15 * 60.0)  # NIFTY about 25,700: the 24,800 call is 900 in the money
    in_the_money = market.quote(call.instrument_token).last_price
    assert at_the_money < 400.0
    assert in_the_money > 850.0


def test_the_chain_holds_the_days_range_with_a_margin() -> None:
    spec = TrendSpec(points_per_min=60.0, reverse_minutes=20)
    market = market_build(7, OPEN, path="trend", trend=spec)
    rows = market.universe.all()
    for name, u in UNDERLYINGS.items():
        strikes = _strikes(rows, name)
        low = spec.level * u.nifty_ratio * (1 - 1e-3) - 10 * u.strike_step
        high = (spec.level + 1_200.0) * u.nifty_ratio * (1 + 1e-3) + 10 * u.strike_step
        assert strikes[0] <= low and strikes[-1] >= high, name


def test_a_one_way_trend_widens_the_chain_to_the_whole_session() -> None:
    market = market_build(7, OPEN, path="trend", trend=TrendSpec(points_per_min=10.0, reverse_minutes=0))
    strikes = _strikes(market.universe.all(), "NIFTY")
    assert strikes[0] <= 24_800.0 - 10 * NIFTY_STEP
    assert strikes[-1] >= 24_800.0 + 3_750.0 + 10 * NIFTY_STEP


def test_a_trend_spec_needs_the_trend_path() -> None:
    with pytest.raises(ValueError, match="trend"):
        market_build(7, OPEN, path="gbm", trend=TrendSpec())
    with pytest.raises(ValueError, match="path must be one of"):
        market_build(7, OPEN, path="sideways")


# --- a live server --------------------------------------------------------------------------------


def _wait_for_first_pump(sim: KitesimThread, timeout: float = 5.0) -> None:
    """Until the pump's first step the market shows the start instant, however far the clock ran."""
    assert sim.state is not None
    deadline = time.monotonic() + timeout
    while sim.state.market.now == OPEN:
        assert time.monotonic() < deadline, "kitesim's market pump never stepped"
        time.sleep(0.02)


@pytest.mark.integration  # kitesim starts at a fixed instant: the host's clock plays no part
def test_index_ltp_over_rest_moves_at_the_trend_rate_at_speed_60() -> None:
    rate, noise, speed = 60.0, 5.0, 60.0
    spec = TrendSpec(points_per_min=rate, reverse_minutes=0, noise_points=noise)
    with KitesimThread(seed=7, speed=speed, start_epoch=OPEN, path="trend", trend=spec) as sim:
        kite = KiteConnect(sim.api_key, access_token=sim.access_token, root=sim.root)
        _wait_for_first_pump(sim)
        started = time.monotonic()
        first = kite.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]["last_price"]
        time.sleep(1.0)
        second = kite.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]["last_price"]
        real_elapsed = time.monotonic() - started
    expected = rate * real_elapsed * speed / 60.0
    # Each read is the market as of its last pump step (0.1 real s = 6 simulated s = 6 points) and
    # the index's half-second grid, each level within the noise of the drift.
    slack = 2 * noise + rate * (0.1 * speed + 0.5) / 60.0 + 2 * ROUNDING
    assert abs((second - first) - expected) <= slack, (first, second, real_elapsed)
