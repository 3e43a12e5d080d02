"""What the fleet wants at a moment of the market clock: the expiry roll, closed days, stock F&O
priced by their future, the strike margin and each token's reason."""

from datetime import date, datetime
from decimal import Decimal

import pytest
import redis

from tests.ticks.factories import FutureFactory, OptionFactory, WatchSpecFactory
from ticks.exchange_calendar import TradingCalendar
from workers.desired import Desired, feed_desired
from workers.listing import Chain

pytestmark = [pytest.mark.django_db, pytest.mark.integration]  # Redis holds the ATM centres

CALENDAR = TradingCalendar(holidays=frozenset({date(2026, 12, 25)}), known_until=date(2026, 12, 31))
EXPIRY, NEXT_EXPIRY = date(2026, 12, 8), date(2026, 12, 15)
INDEX_TOKEN = 256265


def _chain(name: str, expiry: date, strikes: range) -> None:
    for strike in strikes:
        for kind in ("CE", "PE"):
            OptionFactory(name=name, expiry=expiry, strike=Decimal(strike), instrument_type=kind)


@pytest.fixture
def nifty() -> None:
    OptionFactory(
        instrument_token=INDEX_TOKEN, tradingsymbol="NIFTY 50", name="NIFTY 50", expiry=None, strike=0,
        lot_size=0, instrument_type="EQ", segment="INDICES", exchange="NSE",
    )  # fmt: skip
    for expiry in (EXPIRY, NEXT_EXPIRY):
        _chain("NIFTY", expiry, range(24_500, 25_550, 50))
    FutureFactory(name="NIFTY", expiry=date(2026, 12, 29))


def _desired(redis_client: redis.Redis, at: str, price: float = 25_010.0) -> Desired:
    return feed_desired(
        redis_client=redis_client,
        fallback_prices=lambda missing: dict.fromkeys((i.instrument_token for i in missing), price),
        now=datetime.fromisoformat(at),
        calendar=CALENDAR,
    )


def test_expiries_stop_at_15_30_ist_on_their_day() -> None:
    chain = Chain(
        {NEXT_EXPIRY: {25_000.0: (2, 3)}, EXPIRY: {25_000.0: (1,)}}, ((9, EXPIRY), (10, NEXT_EXPIRY))
    )

    assert chain.expiries(datetime.fromisoformat("2026-12-08T15:29:59+05:30")) == [EXPIRY, NEXT_EXPIRY]
    assert chain.expiries(datetime.fromisoformat("2026-12-08T15:30:00+05:30")) == [NEXT_EXPIRY]
    assert chain.expiries(datetime.fromisoformat("2026-12-08T10:00:01+00:00")) == [NEXT_EXPIRY]
    assert chain.live_futures(datetime.fromisoformat("2026-12-08T15:30:00+05:30")) == [(10, NEXT_EXPIRY)]


@pytest.mark.parametrize(
    ("at", "groups"),
    [
        ("2026-12-08T15:29:59+05:30", ["NIFTY:2026-12-08"]),
        ("2026-12-08T15:30:01+05:30", ["NIFTY:2026-12-15"]),
    ],
)
def test_the_expiry_roll_swaps_the_expired_chain_for_the_next(
    nifty: None, redis_client: redis.Redis, settings, at: str, groups: list[str]
) -> None:
    WatchSpecFactory(underlying="NIFTY", expiry_count=1, strikes_around_atm=2)

    desired = _desired(redis_client, at)

    assert [group.underlying_key for group in desired.groups] == groups


def test_nothing_is_wanted_on_a_holiday_or_a_weekend(nifty: None, redis_client: redis.Redis) -> None:
    WatchSpecFactory(underlying="NIFTY", expiry_count=1, strikes_around_atm=2)

    for at in ("2026-12-25T10:00:00+05:30", "2026-12-26T10:00:00+05:30"):
        desired = _desired(redis_client, at)
        assert desired.groups == () and desired.modes == {}
        assert "no session" in desired.closed


def test_the_window_streams_the_margin_and_every_token_says_why(
    nifty: None, redis_client: redis.Redis, settings
) -> None:
    settings.FEED_STRIKE_MARGIN = 2
    WatchSpecFactory(underlying="NIFTY", expiry_count=1, strikes_around_atm=3)

    desired = _desired(redis_client, "2026-12-08T10:00:00+05:30", price=25_010.0)

    (group,) = desired.groups
    options = [desired.reasons[token] for token in group.option_tokens]
    assert sorted({reason.strike for reason in options}) == [float(s) for s in range(24_750, 25_300, 50)]
    assert {(r.strike, r.strike_offset) for r in options} == {(25_000.0 + 50 * k, k) for k in range(-5, 6)}
    assert {r.role for r in options} == {"option"} and {r.expiry for r in options} == {EXPIRY}
    roles = {token: desired.reasons[token].role for token in group.companion_tokens}
    assert sorted(roles.values()) == ["future", "index"]
    assert desired.bands[INDEX_TOKEN].low == pytest.approx(24_970.0)
    assert desired.bands[INDEX_TOKEN].high == pytest.approx(25_030.0)


def test_a_stock_without_an_index_is_priced_by_its_nearest_future(redis_client: redis.Redis) -> None:
    _chain("RELIANCE", date(2026, 12, 29), range(1_400, 1_610, 10))
    near = FutureFactory(name="RELIANCE", expiry=date(2026, 12, 29))
    FutureFactory(name="RELIANCE", expiry=date(2027, 1, 26))
    WatchSpecFactory(underlying="RELIANCE", expiry_count=1, strikes_around_atm=2)

    desired = _desired(redis_client, "2026-12-08T10:00:00+05:30", price=1_503.0)

    (group,) = desired.groups
    assert group.companion_tokens == {near.instrument_token}
    assert sorted(desired.reasons[t].strike for t in group.option_tokens) == [
        float(s) for s in range(1_460, 1_550, 10) for _ in ("CE", "PE")
    ]
    assert set(desired.bands) == {near.instrument_token}
    assert desired.problems == ()
