from datetime import date
from decimal import Decimal

import pytest

from tests.ticks.factories import FutureFactory, OptionFactory
from ticks.selectors import chain_expiries, chain_future, chain_pair, chain_strikes, instrument_list

pytestmark = pytest.mark.django_db

WEEKLY, MONTHLY = date(2026, 12, 1), date(2026, 12, 29)


@pytest.fixture
def chain() -> None:
    for expiry in (WEEKLY, MONTHLY):
        for strike in (Decimal(24950), Decimal(25000), Decimal(25050)):
            OptionFactory(expiry=expiry, strike=strike, instrument_type="CE")
            OptionFactory(expiry=expiry, strike=strike, instrument_type="PE")
    FutureFactory(expiry=MONTHLY)
    OptionFactory(name="BANKNIFTY", expiry=date(2026, 12, 8))
    OptionFactory(expiry=date(2026, 12, 15), is_active=False)


def test_expiries_are_nearest_first_in_one_query(chain: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert chain_expiries(underlying="NIFTY") == [WEEKLY, MONTHLY]
    assert chain_expiries(underlying="NIFTY", on_or_after=date(2026, 12, 2)) == [MONTHLY]


def test_strikes_of_an_expiry_ascend_in_one_query(chain: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert chain_strikes(underlying="NIFTY", expiry=WEEKLY) == [Decimal(24950), Decimal(25000), Decimal(25050)]


def test_the_pair_at_a_strike_in_one_query(chain: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        pair = chain_pair(underlying="NIFTY", expiry=WEEKLY, strike=Decimal(25000))
    assert (pair.call.instrument_type, pair.put.instrument_type) == ("CE", "PE")
    assert (pair.call.expiry, pair.put.strike) == (WEEKLY, Decimal(25000))


def test_a_missing_leg_is_none(chain: None) -> None:
    pair = chain_pair(underlying="NIFTY", expiry=WEEKLY, strike=Decimal(30000))
    assert (pair.call, pair.put) == (None, None)


def test_the_same_expiry_future_or_none(chain: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        future = chain_future(underlying="NIFTY", expiry=MONTHLY)
    assert future.instrument_type == "FUT"
    assert chain_future(underlying="NIFTY", expiry=WEEKLY) is None


def test_instrument_list_filters_by_strike_range_and_type(chain: None) -> None:
    found = instrument_list(name="NIFTY", instrument_type="PE", strike_min=Decimal(25000), strike_max=Decimal(25050))
    assert sorted((i.expiry, i.strike) for i in found) == [
        (WEEKLY, Decimal(25000)),
        (WEEKLY, Decimal(25050)),
        (MONTHLY, Decimal(25000)),
        (MONTHLY, Decimal(25050)),
    ]
