from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.validation import (
    ORDER_TYPES,
    VARIETIES,
    InstrumentFacts,
    OrderInvalid,
    OrderTerms,
    Placement,
    market_open,
    validate_modify,
    validate_place,
)
from ticks.market_time import IST

MONDAY_10 = datetime(2026, 8, 17, 10, 0, tzinfo=IST)
OPTION = InstrumentFacts(
    exchange="NFO",
    tradingsymbol="NIFTY26AUG24800CE",
    segment="NFO-OPT",
    tick_size=Decimal("0.05"),
    lot_size=65,
    expiry=date(2026, 8, 25),
    is_active=True,
    freeze_quantity=1800,
)
EQUITY = InstrumentFacts("NSE", "INFY", "NSE", Decimal("0.05"), 1, None, True, None)
LIMIT_BUY = OrderTerms(
    variety="regular",
    exchange="NFO",
    tradingsymbol="NIFTY26AUG24800CE",
    transaction_type="BUY",
    order_type="LIMIT",
    product="NRML",
    quantity=65,
    price=Decimal("101.5"),
)


def invalid(
    terms: OrderTerms, instrument: InstrumentFacts | None = OPTION, now: datetime = MONDAY_10
) -> OrderInvalid:
    with pytest.raises(OrderInvalid) as caught:
        validate_place(terms, instrument, now, max_slices=10)
    return caught.value


def test_a_plain_limit_order_is_one_slice() -> None:
    assert validate_place(LIMIT_BUY, OPTION, MONDAY_10, max_slices=10) == Placement(slices=(65,))


# --- the instrument -------------------------------------------------------------------------------


def test_an_unknown_or_delisted_instrument_names_tradingsymbol() -> None:
    assert invalid(LIMIT_BUY, None).field == "tradingsymbol"
    assert invalid(LIMIT_BUY, replace(OPTION, is_active=False)).field == "tradingsymbol"


def test_an_index_is_not_tradable() -> None:
    index = InstrumentFacts("NSE", "NIFTY 50", "INDICES", Decimal(0), 0, None, True, None)
    error = invalid(replace(LIMIT_BUY, exchange="NSE", tradingsymbol="NIFTY 50", product="CNC"), index)
    assert (error.field, "not tradable" in error.message) == ("tradingsymbol", True)


def test_an_expired_contract_is_refused_and_expiry_day_trades_until_the_close() -> None:
    assert "expired" in invalid(LIMIT_BUY, replace(OPTION, expiry=date(2026, 8, 14))).message
    expiring_today = replace(OPTION, expiry=MONDAY_10.date())
    assert validate_place(LIMIT_BUY, expiring_today, MONDAY_10, max_slices=10).slices == (65,)
    at_close = MONDAY_10.replace(hour=15, minute=30)
    assert invalid(replace(LIMIT_BUY, variety="amo"), expiring_today, at_close).field == "tradingsymbol"


# --- market hours ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (datetime(2026, 8, 17, 9, 14, 59, tzinfo=IST), False),
        (datetime(2026, 8, 17, 9, 15, tzinfo=IST), True),
        (datetime(2026, 8, 17, 15, 29, 59, tzinfo=IST), True),
        (datetime(2026, 8, 17, 15, 30, tzinfo=IST), False),
        (datetime(2026, 8, 22, 11, 0, tzinfo=IST), False),  # Saturday
        (datetime(2026, 8, 17, 4, 30, tzinfo=UTC), True),  # 10:00 IST
    ],
)
def test_market_hours_are_0915_to_1530_ist_on_weekdays(moment: datetime, is_open: bool) -> None:
    assert market_open(moment) is is_open


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (datetime(2026, 12, 25, 10, 0, tzinfo=IST), False),  # Christmas, a Friday: XBOM holiday
        (datetime(2026, 11, 24, 9, 15, tzinfo=IST), False),  # Guru Nanak Jayanti, a Tuesday
        (datetime(2026, 12, 24, 10, 0, tzinfo=IST), True),
        (datetime(2026, 12, 31, 15, 29, 59, tzinfo=IST), True),
        (datetime(2027, 1, 4, 10, 0, tzinfo=IST), True),  # past the known holidays: a weekday trades
    ],
)
def test_exchange_holidays_are_closed(moment: datetime, is_open: bool) -> None:
    assert market_open(moment) is is_open


def test_on_a_holiday_only_amo_orders_are_taken() -> None:
    christmas = datetime(2026, 12, 25, 11, 0, tzinfo=IST)
    december = replace(OPTION, expiry=date(2026, 12, 29))
    error = invalid(LIMIT_BUY, december, now=christmas)
    assert (error.field, "only AMO" in error.message) == ("variety", True)
    assert validate_place(replace(LIMIT_BUY, variety="amo"), december, christmas, max_slices=10).slices == (
        65,
    )


def test_outside_market_hours_only_amo_orders_are_taken() -> None:
    evening = MONDAY_10.replace(hour=18)
    error = invalid(LIMIT_BUY, now=evening)
    assert (error.field, "only AMO" in error.message) == ("variety", True)
    assert validate_place(replace(LIMIT_BUY, variety="amo"), OPTION, evening, max_slices=10).slices == (65,)


def test_amo_during_market_hours_is_refused() -> None:
    assert invalid(replace(LIMIT_BUY, variety="amo")).field == "variety"


# --- quantity, price, trigger ---------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [0, -65, 64, 66, 100])
def test_quantity_must_be_a_positive_multiple_of_the_lot(quantity: int) -> None:
    error = invalid(replace(LIMIT_BUY, quantity=quantity))
    assert (error.field, "lot size (65)" in error.message) == ("quantity", True)


@pytest.mark.parametrize("price", ["101.52", "0.01", "101.555"])
def test_price_must_be_on_the_tick(price: str) -> None:
    error = invalid(replace(LIMIT_BUY, price=Decimal(price)))
    assert (error.field, "tick size 0.05" in error.message) == ("price", True)


def test_limit_and_sl_need_a_price_market_and_slm_take_none() -> None:
    assert invalid(replace(LIMIT_BUY, price=None)).field == "price"
    assert invalid(replace(LIMIT_BUY, order_type="MARKET")).field == "price"
    market = replace(LIMIT_BUY, order_type="MARKET", price=None)
    assert validate_place(market, OPTION, MONDAY_10, max_slices=10).slices == (65,)
    assert (
        invalid(replace(market, order_type="SL-M", trigger_price=Decimal("90"), price=Decimal("90"))).field
        == "price"
    )


def test_stop_orders_need_a_trigger_on_the_tick_and_others_take_none() -> None:
    stop = replace(LIMIT_BUY, order_type="SL", trigger_price=Decimal("100"))
    assert validate_place(stop, OPTION, MONDAY_10, max_slices=10).slices == (65,)
    assert invalid(replace(stop, trigger_price=None)).field == "trigger_price"
    assert invalid(replace(stop, trigger_price=Decimal("100.01"))).field == "trigger_price"
    assert invalid(replace(LIMIT_BUY, trigger_price=Decimal("100"))).field == "trigger_price"


def test_a_stop_loss_trigger_must_be_on_the_right_side_of_its_price() -> None:
    assert invalid(replace(LIMIT_BUY, order_type="SL", trigger_price=Decimal("102"))).field == "trigger_price"
    sell = replace(LIMIT_BUY, transaction_type="SELL", order_type="SL", trigger_price=Decimal("101"))
    assert invalid(sell).field == "trigger_price"
    assert validate_place(replace(sell, trigger_price=Decimal("102")), OPTION, MONDAY_10, max_slices=10)


# --- product, variety, validity -------------------------------------------------------------------


@pytest.mark.parametrize("product", ["CNC", "MTF"])
def test_derivatives_are_nrml_or_mis(product: str) -> None:
    assert invalid(replace(LIMIT_BUY, product=product)).field == "product"


def test_equity_takes_cnc() -> None:
    equity = replace(LIMIT_BUY, exchange="NSE", tradingsymbol="INFY", product="CNC", quantity=3)
    assert validate_place(equity, EQUITY, MONDAY_10, max_slices=10).slices == (3,)


def test_cover_orders_are_mis_market_or_limit_with_a_stop_on_the_right_side() -> None:
    cover = replace(LIMIT_BUY, variety="co", product="MIS", trigger_price=Decimal("95"))
    assert validate_place(cover, OPTION, MONDAY_10, max_slices=10).slices == (65,)
    assert invalid(replace(cover, product="NRML")).field == "product"
    assert invalid(replace(cover, trigger_price=None)).field == "trigger_price"
    assert invalid(replace(cover, trigger_price=Decimal("105"))).field == "trigger_price"
    assert invalid(replace(cover, order_type="SL")).field == "order_type"
    assert invalid(replace(cover, validity="IOC")).field == "validity"


def test_iceberg_orders_split_into_legs_of_whole_lots() -> None:
    iceberg = replace(LIMIT_BUY, variety="iceberg", quantity=650, iceberg_legs=5)
    assert validate_place(iceberg, OPTION, MONDAY_10, max_slices=10) == Placement(
        slices=(650,), iceberg_quantity=130
    )
    assert invalid(replace(iceberg, iceberg_legs=None)).field == "iceberg_legs"
    assert invalid(replace(iceberg, iceberg_legs=1)).field == "iceberg_legs"
    assert invalid(replace(iceberg, iceberg_legs=51)).field == "iceberg_legs"
    assert invalid(replace(iceberg, iceberg_legs=4)).field == "iceberg_legs"  # 162.5 a leg
    assert invalid(replace(iceberg, order_type="MARKET", price=None)).field == "order_type"
    assert invalid(replace(LIMIT_BUY, iceberg_legs=5)).field == "iceberg_legs"


def test_ttl_validity_needs_minutes_and_ioc_excludes_stops() -> None:
    assert invalid(replace(LIMIT_BUY, validity="TTL")).field == "validity_ttl"
    assert invalid(replace(LIMIT_BUY, validity="TTL", validity_ttl=376)).field == "validity_ttl"
    assert invalid(replace(LIMIT_BUY, validity_ttl=5)).field == "validity_ttl"
    assert validate_place(
        replace(LIMIT_BUY, validity="TTL", validity_ttl=5), OPTION, MONDAY_10, max_slices=10
    )
    stop_ioc = replace(LIMIT_BUY, order_type="SL", trigger_price=Decimal("100"), validity="IOC")
    assert invalid(stop_ioc).field == "validity"


# --- freeze quantity -------------------------------------------------------------------------------


def test_above_the_freeze_quantity_is_refused_unless_auto_slice_is_asked() -> None:
    big = replace(LIMIT_BUY, quantity=65 * 60)  # 3900 > 1800
    error = invalid(big)
    assert (error.field, "freeze quantity 1800" in error.message) == ("quantity", True)
    sliced = validate_place(replace(big, autoslice=True), OPTION, MONDAY_10, max_slices=10)
    assert sliced.slices == (1755, 1755, 390)  # 27 lots a slice: the largest within 1800
    assert sum(sliced.slices) == 3900


def test_auto_slicing_is_bounded() -> None:
    huge = replace(LIMIT_BUY, quantity=65 * 300, autoslice=True)  # 12 slices of 27 lots
    assert "at most 10" in invalid(huge).message
    assert (
        invalid(
            replace(LIMIT_BUY, variety="co", product="MIS", trigger_price=Decimal("95"), autoslice=True)
        ).field
        == "autoslice"
    )


def test_a_modification_may_not_exceed_the_freeze_quantity() -> None:
    with pytest.raises(OrderInvalid, match="freeze"):
        validate_modify(replace(LIMIT_BUY, quantity=1820), OPTION, MONDAY_10)
    validate_modify(replace(LIMIT_BUY, quantity=1755, price=Decimal("99.95")), OPTION, MONDAY_10)


# --- property: every input either validates or names a field ----------------------------------------

_FIELDS = {
    "variety", "tradingsymbol", "transaction_type", "order_type", "product", "quantity", "price",
    "trigger_price", "validity", "validity_ttl", "iceberg_legs", "autoslice",
}  # fmt: skip
_on_tick = st.integers(-2, 400_000).map(lambda ticks: ticks * Decimal("0.05"))
_prices = st.one_of(
    st.none(), _on_tick, st.decimals(min_value=Decimal("-10"), max_value=Decimal("100000"), places=3)
)
_lots = st.integers(-2, 400).map(lambda lots: lots * 65)


@given(
    variety=st.sampled_from(VARIETIES),
    order_type=st.sampled_from(ORDER_TYPES),
    transaction_type=st.sampled_from(["BUY", "SELL"]),
    product=st.sampled_from(["CNC", "NRML", "MIS", "MTF"]),
    quantity=st.one_of(_lots, st.integers(-100, 200_000)),
    price=_prices,
    trigger_price=_prices,
    validity=st.sampled_from(["DAY", "IOC", "TTL"]),
    validity_ttl=st.one_of(st.none(), st.integers(-5, 500)),
    iceberg_legs=st.one_of(st.none(), st.integers(0, 60)),
    autoslice=st.booleans(),
    hour=st.integers(0, 23),
)
def test_any_order_either_validates_into_lots_or_names_a_field(hour: int, **fields: object) -> None:
    terms = replace(LIMIT_BUY, **fields)
    try:
        placement = validate_place(terms, OPTION, MONDAY_10.replace(hour=hour), max_slices=10)
    except OrderInvalid as error:
        assert error.field in _FIELDS
        return
    assert sum(placement.slices) == terms.quantity
    assert all(0 < q <= 1800 and q % 65 == 0 for q in placement.slices) or terms.variety == "iceberg"
    if terms.price is not None:
        assert terms.price % Decimal("0.05") == 0
