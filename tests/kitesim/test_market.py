"""The market model: determinism, tick grid, day ranges, depth, option pricing and candles."""

import math
from datetime import date, datetime

import numpy as np
import pytest

from kitesim.clock import IST, SimClock
from kitesim.market import Market, market_build
from kitesim.paths import NiftyReplay, session_open_epoch
from kitesim.pricing import RISK_FREE_RATE, SECONDS_PER_YEAR, smile_vol
from kitesim.server import build_state, closed_evening, default_start_epoch, pump_once, session_roll
from kitesim.ticker import TickerHub

SESSION = date(2026, 8, 17)
OPEN = session_open_epoch(SESSION)
TICK = 0.05


def _stepped(seed: int = 7, until: float = 1800.0, every: float = 1.5, **options: object) -> Market:
    market = market_build(seed, OPEN, **options)  # type: ignore[arg-type]
    for t in np.arange(0.0, until + every, every):
        market.advance(OPEN + float(t))
    return market


@pytest.fixture(scope="module")
def market() -> Market:
    return _stepped()


def _token(market: Market, key: str) -> int:
    inst = market.universe.by_key(key)
    assert inst is not None, key
    return inst.instrument_token


def _on_grid(values: np.ndarray) -> bool:
    return bool(np.all(np.abs(values / TICK - np.round(values / TICK)) < 1e-6))


def _black76(forward: float, strike: float, years: float, vol: float, call: bool) -> float:
    root = vol * math.sqrt(years)
    d1 = (math.log(forward / strike) + 0.5 * root * root) / root
    d2 = d1 - root
    n = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    sign = 1 if call else -1
    return math.exp(-RISK_FREE_RATE * years) * sign * (forward * n(sign * d1) - strike * n(sign * d2))


def test_same_seed_same_schedule_same_market() -> None:
    a, b = _stepped(until=150), _stepped(until=150)
    for name in ("last", "volume", "high", "low", "oi", "bid_price", "ask_qty"):
        assert np.array_equal(getattr(a.table, name), getattr(b.table, name)), name


def test_quotes_are_a_function_of_time_not_of_the_step_schedule() -> None:
    fine, coarse = _stepped(until=150, every=0.3), market_build(7, OPEN)
    coarse.advance(fine.now)
    for name in (
        "last",
        "volume",
        "ltq",
        "oi",
        "bid_price",
        "bid_qty",
        "ask_price",
        "ask_orders",
        "timestamp",
    ):
        assert np.array_equal(getattr(fine.table, name), getattr(coarse.table, name)), name


def test_another_seed_moves_differently() -> None:
    a, b = market_build(7, OPEN), market_build(8, OPEN)
    a.advance(OPEN + 300)
    b.advance(OPEN + 300)
    assert not np.array_equal(a.table.bid_qty, b.table.bid_qty)
    # NIFTY itself is the recording; only the half-second tick phase differs between seeds.
    assert abs(a.quote(256265).last_price - b.quote(256265).last_price) < 2.0


def test_nifty_follows_the_recorded_minutes(market: Market) -> None:
    replay = NiftyReplay()
    session = replay.session(SESSION)
    at = OPEN + 600.0
    quote = market.quote(256265)
    assert abs(quote.last_price - float(session.at(quote.timestamp))) < 1.0  # stamp is whole seconds
    assert session.at(OPEN) == pytest.approx(float(session.levels[0]))
    assert market.quote(256265).close == pytest.approx(session.prev_close)
    assert replay.recorded_index(SESSION) != replay.recorded_index(date(2026, 8, 18))
    assert at < market.now


def test_prices_on_the_tick_grid_and_options_never_below_a_tick(market: Market) -> None:
    t, tradable = market.table, ~market.contracts.is_index
    assert _on_grid(t.last[tradable])
    assert _on_grid(t.bid_price[tradable]) and _on_grid(t.ask_price[tradable])
    assert t.last[market.contracts.is_option].min() >= TICK


def test_day_range_holds_last_and_open(market: Market) -> None:
    t = market.table
    assert np.all(t.low <= t.last) and np.all(t.last <= t.high)
    assert np.all(t.low <= t.open) and np.all(t.open <= t.high)


def test_depth_is_sorted_and_never_crossed(market: Market) -> None:
    t, tradable = market.table, ~market.contracts.is_index
    bids, asks = t.bid_price[tradable], t.ask_price[tradable]
    live_bids = np.where(bids > 0, bids, np.nan)
    assert np.all(np.nan_to_num(np.diff(live_bids, axis=1), nan=-1.0) < 0)
    assert np.all(np.diff(asks, axis=1) > 0)
    assert np.all(bids[:, 0] < asks[:, 0])
    assert np.all((t.bid_qty[tradable] > 0) == (bids > 0))
    assert np.all(t.bid_orders[tradable] <= t.bid_qty[tradable])
    quote = market.quote(_token(market, "NFO:NIFTY26AUG24800CE"))
    assert len(quote.bids) == len(quote.asks) == 5
    assert quote.buy_quantity >= sum(level.quantity for level in quote.bids)


def test_indices_carry_no_trading_fields(market: Market) -> None:
    quote = market.quote(265)
    assert (quote.volume, quote.oi, quote.last_traded_quantity) == (0, 0, 0)
    assert all(level.quantity == 0 for level in quote.bids + quote.asks)


@pytest.mark.parametrize(
    "key",
    [
        "NFO:NIFTY26AUG24800CE",
        "NFO:NIFTY2681824600PE",
        "NFO:NIFTY26OCT25500CE",
        "NFO:BANKNIFTY26SEP54300PE",
        "BFO:SENSEX26AUG81100CE",
    ],
)
def test_option_mid_is_black76_on_the_forward_with_the_smile(market: Market, key: str) -> None:
    inst = market.universe.by_key(key)
    assert inst is not None and inst.expiry is not None
    quote = market.quote(inst.instrument_token)
    expiry_epoch = datetime.combine(inst.expiry, datetime.min.time(), IST).timestamp() + 15.5 * 3600
    years = (expiry_epoch - quote.timestamp) / SECONDS_PER_YEAR
    forward = market.forward(inst.underlying, inst.expiry)
    vol = float(smile_vol(np.array(inst.strike), np.array(forward), np.array(years)))
    fair = _black76(forward, inst.strike, years, vol, inst.instrument_type == "CE")
    mid = (quote.bids[0].price + quote.asks[0].price) / 2
    half_spread = (quote.asks[0].price - quote.bids[0].price) / 2
    assert abs(mid - fair) <= half_spread + 2 * TICK + 0.002 * fair


def test_smile_has_a_put_skew_and_a_term_structure() -> None:
    forward, years = np.array(24_800.0), np.array(0.05)
    strikes = np.array([23_000.0, 24_800.0, 26_600.0])
    low, atm, high = smile_vol(strikes, forward, years)
    assert low > high > atm
    assert smile_vol(forward, forward, np.array(0.01)) > smile_vol(forward, forward, np.array(0.5))


def test_put_call_parity(market: Market) -> None:
    for strike in (24_500, 24_800, 25_100):
        call, put = (market.quote(_token(market, f"NFO:NIFTY26SEP{strike}{k}")) for k in ("CE", "PE"))
        forward = market.forward("NIFTY", date(2026, 9, 29))
        years = (datetime(2026, 9, 29, 15, 30, tzinfo=IST).timestamp() - market.now) / SECONDS_PER_YEAR
        mids = [(q.bids[0].price + q.asks[0].price) / 2 for q in (call, put)]
        parity = math.exp(-RISK_FREE_RATE * years) * (forward - strike)
        assert abs(mids[0] - mids[1] - parity) < 3.0


def test_futures_trade_near_the_forward(market: Market) -> None:
    fut = market.quote(_token(market, "NFO:NIFTY26SEPFUT"))
    assert fut.last_price == pytest.approx(market.forward("NIFTY", date(2026, 9, 29)), rel=2e-3)
    assert market.forward("NIFTY", date(2026, 9, 29)) > market.spot("NIFTY")


def test_volume_grows_oi_moves_one_way_a_day_and_ticks_are_rate_limited() -> None:
    market = market_build(7, OPEN)
    changes = np.zeros(len(market.universe))
    volume, oi = market.table.volume.copy(), market.table.oi.copy()
    direction = np.sign(market.dynamics.oi_change)  # towards the next session's opening OI
    for t in np.arange(0.1, 20.0, 0.1):
        changes += market.advance(OPEN + 60 + float(t))
        assert np.all(market.table.volume >= volume)
        assert np.all((market.table.oi - oi) * direction >= 0)
        volume, oi = market.table.volume.copy(), market.table.oi.copy()
    table = market.table
    assert np.all((table.oi_day_low <= table.oi) & (table.oi <= table.oi_day_high))
    assert changes.max() <= 2 * 20 + 1
    assert changes.sum() > 0


def _options_at_close(seed: int, day: date) -> tuple[Market, dict[int, float], dict[int, float]]:
    """A market stepped through ``day`` to its last instant: each token's (opening OI, closing OI)."""
    market = market_build(seed, session_open_epoch(day))
    opened = dict(zip(market.table.token.tolist(), market.table.oi.tolist(), strict=True))
    for t in np.arange(600.0, 22_500.0, 600.0):
        market.advance(session_open_epoch(day) + float(t))
    market.finish_session()
    assert market.session == day
    return market, opened, dict(zip(market.table.token.tolist(), market.table.oi.tolist(), strict=True))


def test_a_session_opens_with_the_oi_the_last_one_closed_with_and_moves_on_its_own() -> None:
    market, opened, closed = _options_at_close(7, SESSION)
    market.advance(session_open_epoch(date(2026, 8, 18)))  # the roll: a new universe and new dynamics

    assert market.session == date(2026, 8, 18)
    reopened = dict(zip(market.table.token.tolist(), market.table.oi.tolist(), strict=True))
    carried = [token for token in reopened if token in closed and closed[token] > 0]
    assert len(carried) > 2000  # every contract still listed but the index
    assert [token for token in carried if reopened[token] != closed[token]] == []
    moved = np.array([closed[token] - opened[token] for token in carried])
    assert (moved > 0).sum() > 1000 and (moved < 0).sum() > 100  # a day adds OI, or sheds it


def test_the_candles_close_each_day_on_the_oi_the_next_day_opens_with() -> None:
    market, _, closed = _options_at_close(11, SESSION)
    tokens = [_token(market, key) for key in ("NFO:NIFTY26AUG24800CE", "NFO:NIFTY26SEP26000PE",
                                              "NFO:NIFTY26AUGFUT", "BFO:SENSEX26AUG81100CE")]  # fmt: skip
    market.advance(session_open_epoch(date(2026, 8, 18)))
    first = market.quote(tokens[0])
    assert first.oi == first.oi_day_low == first.oi_day_high  # nothing traded yet

    for token in tokens:
        minutes = market.candles(token, "minute", OPEN, OPEN + 22_500)
        days = market.candles(token, "day", session_open_epoch(date(2026, 8, 10)), OPEN + 22_500)
        assert minutes[-1][6] == days[-1][6] == closed[token] == market.quote(token).oi
        assert len({day[6] for day in days}) == len(days) == 6  # OI moves every session


def test_nothing_changes_without_time_passing(market: Market) -> None:
    market.advance(market.now)
    assert not market.advance(market.now).any()


def test_candles_are_consistent(market: Market) -> None:
    token = _token(market, "NFO:NIFTY26AUG24800CE")
    minutes = market.candles(token, "minute", OPEN, OPEN + 1800)
    # At 09:45:00 sharp the 09:45 minute has no trade yet, so (as on Kite) no candle.
    assert len(minutes) == 30 and minutes[-1][0] == OPEN + 1740
    for _start, o, h, low, c, volume, oi in minutes:
        assert low <= min(o, c) and max(o, c) <= h and volume >= 0 and oi > 0
    fives = market.candles(token, "5minute", OPEN, OPEN + 1799)
    assert [c[0] for c in fives] == [OPEN + 300 * k for k in range(6)]
    first = minutes[:5]
    assert fives[0][1:] == (
        first[0][1],
        max(c[2] for c in first),
        min(c[3] for c in first),
        first[-1][4],
        sum(c[5] for c in first),
        first[-1][6],
    )
    fresh = market_build(7, OPEN)  # at 09:15:00 only the forming first minute exists
    assert [c[0] for c in fresh.candles(token, "minute", OPEN, OPEN + 300)] == [OPEN]


def test_day_candles_cover_past_sessions_only_on_trading_days(market: Market) -> None:
    days = market.candles(256265, "day", OPEN - 7 * 86_400, OPEN + 3600)
    stamps = [datetime.fromtimestamp(c[0], IST) for c in days]
    assert [s.date() for s in stamps] == [date(2026, 8, d) for d in (10, 11, 12, 13, 14, 17)]
    assert all((s.hour, s.minute) == (0, 0) for s in stamps)
    assert all(c[5] == 0 and c[6] == 0 for c in days)
    past = OPEN - 7 * 86_400, OPEN - 86_400
    assert market.candles(256265, "day", *past) == _stepped(seed=7, until=0).candles(256265, "day", *past)
    with pytest.raises(KeyError):
        market.candles(1, "minute", OPEN, OPEN + 60)


def test_closing_time_rolls_to_the_next_session() -> None:
    market = _stepped(until=5)
    before = market.universe.by_key("NFO:NIFTY26AUG24800CE")
    changed = market.advance(session_open_epoch(date(2026, 8, 19)) + 1)
    assert market.session == date(2026, 8, 19) and changed.all()
    assert market.universe.by_key("NFO:NIFTY2681824800CE") is None
    assert market.universe.by_key("NFO:NIFTY26AUG24800CE") == before
    assert market.quote(256265).close != market.quote(256265).open


def test_gbm_mode_is_seeded() -> None:
    a, b = _stepped(until=60, path="gbm"), _stepped(until=60, path="gbm")
    c = _stepped(seed=9, until=60, path="gbm")
    assert a.quote(256265) == b.quote(256265)
    assert a.quote(256265).last_price != c.quote(256265).last_price
    with pytest.raises(ValueError, match="path"):
        market_build(7, OPEN, path="brownian")


def test_unknown_token_is_a_key_error(market: Market) -> None:
    with pytest.raises(KeyError):
        market.quote(42)
    assert market.step(market.now) == []


def test_default_start_is_todays_session_or_mondays() -> None:
    wednesday_night = datetime(2026, 11, 25, 22, 40, tzinfo=IST)
    assert default_start_epoch(wednesday_night) == session_open_epoch(date(2026, 11, 25))
    saturday = datetime(2026, 11, 28, 11, 0, tzinfo=IST)
    assert default_start_epoch(saturday) == session_open_epoch(date(2026, 11, 30))


def test_session_roll_skips_the_closed_market() -> None:
    friday_close = datetime(2026, 8, 14, 15, 30, 5, tzinfo=IST).timestamp()
    clock = SimClock(start_epoch=friday_close, speed=1.0, monotonic=lambda: 0.0)
    assert session_roll(clock) == session_open_epoch(date(2026, 8, 17))
    assert session_roll(clock) == session_open_epoch(date(2026, 8, 17))  # open market: no jump


def test_contract_history_starts_at_listing(market: Market) -> None:
    token = _token(market, "NFO:NIFTY26OCT24800CE")
    days = market.candles(token, "day", OPEN - 400 * 86_400, OPEN + 3600)
    first = datetime.fromtimestamp(days[0][0], IST).date()
    assert first >= date(2026, 6, 29) and len(days) > 30


def test_after_the_close_the_clock_runs_on_shut_then_jumps_to_the_next_session() -> None:
    close = datetime(2026, 12, 8, 15, 30, tzinfo=IST).timestamp()

    assert not closed_evening(close - 0.001, 600.0)
    assert closed_evening(close, 600.0)
    assert closed_evening(close + 599.9, 600.0)
    assert not closed_evening(close + 600.0, 600.0)
    assert not closed_evening(close, 0.0)
    assert not closed_evening(datetime(2026, 12, 25, 15, 31, tzinfo=IST).timestamp(), 600.0)  # a holiday


async def test_the_closed_evening_keeps_the_date_and_the_tokens_and_sends_only_the_close() -> None:
    state = build_state(
        seed=3,
        speed=1.0,  # at 60x a build slower than 0.17 s on a busy box reached 15:30 before the first step
        start_epoch=datetime(2026, 12, 8, 15, 29, 50, tzinfo=IST).timestamp(),
        close_linger_s=600.0,
    )
    hub = TickerHub(state)
    state.market.advance(state.clock.now())
    state.clock.jump(15.0)  # 15:30:05

    pump_once(state, hub, None, 0.1)

    assert state.clock.now_ist().date() == date(2026, 12, 8)
    assert state.market.session == date(2026, 12, 8)
    close = session_open_epoch(date(2026, 12, 8)) + 22_500
    assert state.market.now == close - 1e-6  # the final slots before 15:30 were published
    assert not state.market.finish_session().any()  # once
    assert state.accounts.authenticate("demo", "demotoken", state.clock.now()) is not None
    state.clock.jump(600.0)  # 15:40:05: the jump to the next session's open
    pump_once(state, hub, None, 0.1)
    assert state.clock.now_ist().date() == date(2026, 12, 9)
