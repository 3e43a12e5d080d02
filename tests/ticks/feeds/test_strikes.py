import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticks.feeds.strikes import (
    AtmBand,
    AtmState,
    atm_band,
    atm_band_merge,
    atm_recentre,
    strike_step,
    strikes_around,
)

NIFTY_STEP = 50.0


def _walk(prices: list[float], *, start: float = 0.0, every_s: float = 10.0, **kwargs: float) -> list[float]:
    """Centres after feeding ``prices`` one every ``every_s`` seconds."""
    state: AtmState | None = None
    centres = []
    for i, price in enumerate(prices):
        state = atm_recentre(price, NIFTY_STEP, state, start + i * every_s, **kwargs)
        centres.append(state.centre)
    return centres


# --- atm_recentre -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "centre"),
    [(25012.0, 25000.0), (25024.9, 25000.0), (25025.0, 25050.0), (25030.0, 25050.0), (24974.0, 24950.0)],
)
def test_first_call_centres_on_the_nearest_strike(price: float, centre: float) -> None:
    assert atm_recentre(price, NIFTY_STEP, None, now=100.0) == AtmState(centre=centre, moved_at=100.0)


@pytest.mark.parametrize(
    ("price", "centre"),
    [
        (25029.0, 25000.0),  # past the half-way point, not yet 0.6 of a gap
        (25030.0, 25000.0),  # exactly 0.6 of a gap: not beyond it
        (25030.5, 25050.0),
        (24970.0, 25000.0),
        (24969.5, 24950.0),
    ],
)
def test_the_centre_moves_only_past_six_tenths_of_a_gap(price: float, centre: float) -> None:
    state = AtmState(centre=25000.0, moved_at=0.0)
    assert atm_recentre(price, NIFTY_STEP, state, now=100.0).centre == centre


def test_a_move_records_when_it_happened() -> None:
    state = AtmState(centre=25000.0, moved_at=0.0)
    assert atm_recentre(25040.0, NIFTY_STEP, state, now=123.5) == AtmState(centre=25050.0, moved_at=123.5)


def test_a_price_oscillating_at_a_boundary_never_churns() -> None:
    # 25025 is where the nearest strike flips between 25000 and 25050.
    wobble = [25020.0, 25029.0, 25021.0, 25025.0, 25028.0, 25022.0] * 20
    assert set(_walk(wobble)) == {25000.0}


def test_after_a_move_the_same_oscillation_does_not_move_it_back() -> None:
    prices = [25000.0, 25031.0] + [25029.0, 25021.0, 25025.0] * 20
    centres = _walk(prices)
    assert centres[:2] == [25000.0, 25050.0]
    assert set(centres[2:]) == {25050.0}


def test_without_hysteresis_the_same_oscillation_would_churn() -> None:
    wobble = [25020.0, 25029.0] * 10
    assert len(set(_walk(wobble, hysteresis=0.5))) == 2


def test_no_move_within_the_cooldown() -> None:
    first = atm_recentre(25000.0, NIFTY_STEP, None, now=1000.0)
    assert atm_recentre(25100.0, NIFTY_STEP, first, now=1004.9) is first
    moved = atm_recentre(25100.0, NIFTY_STEP, first, now=1005.0)
    assert moved == AtmState(centre=25100.0, moved_at=1005.0)
    assert atm_recentre(25000.0, NIFTY_STEP, moved, now=1009.0) is moved
    assert atm_recentre(25000.0, NIFTY_STEP, moved, now=1010.0).centre == 25000.0


def test_a_clock_that_runs_backwards_does_not_move_the_centre() -> None:
    state = AtmState(centre=25000.0, moved_at=1000.0)
    assert atm_recentre(26000.0, NIFTY_STEP, state, now=900.0) is state


def test_the_cooldown_and_hysteresis_are_configurable() -> None:
    state = AtmState(centre=25000.0, moved_at=1000.0)
    assert (
        atm_recentre(25026.0, NIFTY_STEP, state, now=1001.0, hysteresis=0.5, cooldown_s=0.0).centre == 25050.0
    )
    assert atm_recentre(25026.0, NIFTY_STEP, state, now=1001.0, cooldown_s=0.0) is state


def test_a_gap_jumps_several_strikes_at_once() -> None:
    state = AtmState(centre=25000.0, moved_at=0.0)
    assert atm_recentre(25262.0, NIFTY_STEP, state, now=60.0).centre == 25250.0
    assert atm_recentre(24610.0, NIFTY_STEP, state, now=60.0).centre == 24600.0


def test_fractional_strike_steps() -> None:
    state = atm_recentre(101.23, 0.05, None, now=0.0)
    assert state.centre == pytest.approx(101.25)
    assert atm_recentre(101.27, 0.05, state, now=10.0) is state
    assert atm_recentre(101.29, 0.05, state, now=10.0).centre == pytest.approx(101.30)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"price": math.nan}, "price"),
        ({"price": math.inf}, "price"),
        ({"strike_step": 0.0}, "strike_step"),
        ({"strike_step": -50.0}, "strike_step"),
        ({"strike_step": math.nan}, "strike_step"),
        ({"now": math.nan}, "now"),
        ({"hysteresis": -0.1}, "hysteresis"),
        ({"cooldown_s": -1.0}, "cooldown_s"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, float], name: str) -> None:
    arguments = {"price": 25000.0, "strike_step": NIFTY_STEP, "state": None, "now": 0.0} | kwargs
    with pytest.raises(ValueError, match=name):
        atm_recentre(**arguments)


# --- strike_step --------------------------------------------------------------------------------


def test_strike_step_of_a_regular_chain() -> None:
    assert strike_step([24900, 24950, 25000, 25050, 25100]) == 50


def test_strike_step_ignores_the_wider_far_strikes() -> None:
    # NIFTY lists 50-point strikes near the money, then 100 and 500 further out.
    near = [float(k) for k in range(24500, 25501, 50)]
    far = [23000.0, 23500.0, 24000.0, 24100.0, 24200.0, 24300.0, 24400.0, 25600.0, 25700.0, 26000.0, 26500.0]
    assert strike_step(near + far) == 50


def test_strike_step_accepts_unsorted_strikes_listed_once_per_call_and_put() -> None:
    strikes = [25100, 24900, 25000, 24900, 25100, 25000, 24800, 24800]
    assert strike_step(strikes) == 100


def test_strike_step_tie_goes_to_the_smaller_gap() -> None:
    assert strike_step([100, 150, 200, 300, 400]) == 50


def test_strike_step_is_not_split_by_float_noise() -> None:
    strikes = [round(100 + 0.05 * k, 2) for k in range(40)] + [110.0, 120.0]
    assert strike_step(strikes) == pytest.approx(0.05)


@pytest.mark.parametrize("strikes", [[], [25000.0], [25000.0, 25000.0]])
def test_strike_step_needs_two_distinct_strikes(strikes: list[float]) -> None:
    with pytest.raises(ValueError, match="strikes"):
        strike_step(strikes)


def test_strike_step_rejects_nan() -> None:
    with pytest.raises(ValueError, match="strikes"):
        strike_step([100.0, math.nan, 200.0])


# --- strikes_around -----------------------------------------------------------------------------

CHAIN = [float(k) for k in range(100, 1001, 50)]  # 100, 150, ..., 1000


def test_strikes_around_a_listed_centre() -> None:
    assert strikes_around(CHAIN, 500.0, 2) == [400.0, 450.0, 500.0, 550.0, 600.0]


def test_strikes_around_an_unlisted_centre_uses_the_nearest_listed_strike() -> None:
    assert strikes_around(CHAIN, 512.0, 1) == [450.0, 500.0, 550.0]
    assert strikes_around(CHAIN, 5000.0, 1) == [950.0, 1000.0]
    assert strikes_around(CHAIN, -5.0, 0) == [100.0]


def test_strikes_around_half_way_picks_the_lower_strike() -> None:
    assert strikes_around(CHAIN, 525.0, 0) == [500.0]


def test_strikes_around_is_clipped_at_the_ends_of_the_list() -> None:
    assert strikes_around(CHAIN, 100.0, 2) == [100.0, 150.0, 200.0]
    assert strikes_around(CHAIN, 950.0, 3) == [800.0, 850.0, 900.0, 950.0, 1000.0]
    assert strikes_around(CHAIN, 500.0, 100) == CHAIN


def test_strikes_around_counts_listed_strikes_across_irregular_gaps() -> None:
    strikes = [24000.0, 24500.0, 24800.0, 24900.0, 24950.0, 25000.0, 25050.0, 25100.0, 25500.0]
    assert strikes_around(strikes, 25010.0, 3) == [
        24800.0,
        24900.0,
        24950.0,
        25000.0,
        25050.0,
        25100.0,
        25500.0,
    ]


def test_strikes_around_dedups_and_sorts_the_listing() -> None:
    assert strikes_around([550.0, 500.0, 450.0, 500.0, 550.0, 450.0], 500.0, 1) == [450.0, 500.0, 550.0]


def test_strikes_around_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="strikes"):
        strikes_around([], 500.0, 2)
    with pytest.raises(ValueError, match="n must"):
        strikes_around(CHAIN, 500.0, -1)
    with pytest.raises(ValueError, match="centre"):
        strikes_around(CHAIN, math.nan, 1)


# --- properties ---------------------------------------------------------------------------------

steps = st.sampled_from([0.05, 0.5, 1.0, 5.0, 25.0, 50.0, 100.0])
prices = st.floats(min_value=1.0, max_value=100_000.0, allow_nan=False)
ticks = st.lists(st.tuples(prices, st.floats(min_value=0.0, max_value=30.0)), min_size=1, max_size=60)


def _is_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-6


@given(step=steps, path=ticks)
def test_the_centre_is_always_a_multiple_of_the_step(step: float, path: list[tuple[float, float]]) -> None:
    state, now = None, 0.0
    for price, wait in path:
        now += wait
        state = atm_recentre(price, step, state, now)
        assert _is_multiple(state.centre, step)


@given(step=steps, path=ticks)
def test_moves_need_six_tenths_of_a_gap_and_the_cooldown(
    step: float, path: list[tuple[float, float]]
) -> None:
    state = atm_recentre(path[0][0], step, None, 0.0)
    now = 0.0
    for price, wait in path[1:]:
        now += wait
        new = atm_recentre(price, step, state, now)
        if new != state:
            assert abs(price - state.centre) > 0.6 * step
            assert now - state.moved_at >= 5.0
            assert new == AtmState(centre=math.floor(price / step + 0.5) * step, moved_at=now)
        state = new


@given(step=steps, path=ticks)
def test_without_cooldown_the_price_stays_within_six_tenths_of_a_gap(
    step: float, path: list[tuple[float, float]]
) -> None:
    state = None
    for now, (price, _) in enumerate(path):
        state = atm_recentre(price, step, state, float(now), cooldown_s=0.0)
        assert abs(price - state.centre) <= 0.6 * step * (1 + 1e-9)


@given(
    step=st.sampled_from([1.0, 5.0, 50.0, 100.0]),
    low=st.integers(min_value=1, max_value=500),
    count=st.integers(min_value=2, max_value=200),
    position=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_centre_inside_a_regular_listing_is_a_listed_strike(
    step: float, low: int, count: int, position: float
) -> None:
    strikes = [k * step for k in range(low, low + count)]
    price = strikes[0] + position * (strikes[-1] - strikes[0])
    centre = atm_recentre(price, strike_step(strikes), None, 0.0).centre
    assert centre in strikes
    assert strikes_around(strikes, centre, 0) == [centre]


listings = st.lists(st.integers(min_value=0, max_value=2000).map(lambda k: k * 25.0), min_size=1, max_size=80)


@given(strikes=listings, centre=st.floats(min_value=-1000.0, max_value=60_000.0), n=st.integers(0, 30))
def test_strikes_around_is_a_sorted_contiguous_window(strikes: list[float], centre: float, n: int) -> None:
    window = strikes_around(strikes, centre, n)
    listing = sorted(set(strikes))
    start = listing.index(window[0])
    assert window == listing[start : start + len(window)]
    assert 1 <= len(window) <= 2 * n + 1
    nearest = min(listing, key=lambda strike: (abs(strike - centre), strike))
    assert nearest in window
    middle = listing.index(nearest)
    if n <= middle < len(listing) - n:
        assert len(window) == 2 * n + 1


@given(
    step=st.sampled_from([0.05, 1.0, 50.0, 100.0]),
    count=st.integers(min_value=3, max_value=100),
    far=st.lists(st.integers(min_value=2, max_value=20), max_size=2),
)
def test_strike_step_finds_the_grid_under_a_few_far_strikes(step: float, count: int, far: list[int]) -> None:
    strikes = [round(1000 * step + k * step, 6) for k in range(count)]
    top = strikes[-1]
    for multiple in far:
        top = round(top + multiple * step, 6)
        strikes.append(top)
    assert strike_step(strikes) == pytest.approx(step)


# --- the band a feed watches ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "crossed"),
    [(25_030.0, False), (25_030.01, True), (24_970.0, False), (24_969.99, True), (25_000.0, False)],
)
def test_the_band_is_0_6_of_a_gap_either_side_of_the_centre(price: float, crossed: bool) -> None:
    band = atm_band(AtmState(centre=25_000.0, moved_at=100.0), 50.0)

    assert band.crossed_by(price, now=105.0) is crossed


def test_the_band_waits_out_the_cooldown() -> None:
    band = atm_band(AtmState(centre=25_000.0, moved_at=100.0), 50.0, cooldown_s=5.0)

    assert not band.crossed_by(26_000.0, now=104.999)
    assert band.crossed_by(26_000.0, now=105.0)


@given(
    price=st.floats(min_value=20_000, max_value=30_000, allow_nan=False),
    centre_steps=st.integers(min_value=400, max_value=600),
    now=st.floats(min_value=0, max_value=20),
)
def test_a_crossing_is_exactly_when_the_recentre_would_move(price: float, centre_steps: int, now: float) -> None:
    state = AtmState(centre=centre_steps * 50.0, moved_at=0.0)

    moved = atm_recentre(price, 50.0, state, now) != state

    assert atm_band(state, 50.0).crossed_by(price, now) is moved


def test_merged_bands_take_the_tightest_range_and_the_earliest_time() -> None:
    bands = [AtmBand(24_970.0, 25_030.0, 10.0), AtmBand(24_940.0, 25_060.0, 5.0), AtmBand(24_980.0, 25_020.0, 8.0)]

    assert atm_band_merge(bands) == AtmBand(24_980.0, 25_020.0, 5.0)
    with pytest.raises(ValueError, match="bands"):
        atm_band_merge([])
