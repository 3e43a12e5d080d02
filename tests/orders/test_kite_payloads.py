from datetime import datetime
from decimal import Decimal

import pytest
import requests
from kiteconnect import exceptions as kite_errors

from orders.kite import KiteOutcome, MalformedKiteOrder, classify, facts_from_payload, kite_time, place_params
from orders.models import Order
from orders.states import OrderStatus
from ticks.market_time import IST

# A Kite order update as the WebSocket carries it ({"type": "order", "data": ...}), shaped like Kite's
# postback payload (ref/kite-connect-v3.md §2.10), with our tag.
UPDATE = {
    "account_id": "SIM001",
    "placed_by": "SIM001",
    "order_id": "260817000000012",
    "exchange_order_id": "1100000000000012",
    "parent_order_id": None,
    "status": "COMPLETE",
    "status_message": None,
    "status_message_raw": None,
    "order_timestamp": "2026-08-17 09:20:01",
    "exchange_update_timestamp": "2026-08-17 09:20:02",
    "exchange_timestamp": "2026-08-17 09:20:01",
    "variety": "regular",
    "modified": False,
    "exchange": "NFO",
    "tradingsymbol": "NIFTY26AUG24800CE",
    "instrument_token": 12345602,
    "order_type": "MARKET",
    "transaction_type": "BUY",
    "validity": "DAY",
    "validity_ttl": 0,
    "product": "NRML",
    "quantity": 65,
    "disclosed_quantity": 0,
    "price": 0,
    "trigger_price": 0,
    "average_price": 187.35,
    "filled_quantity": 65,
    "pending_quantity": 0,
    "cancelled_quantity": 0,
    "market_protection": 0,
    "meta": {},
    "tag": "0f3a9c2b1d4e5f607182",
    "tags": ["0f3a9c2b1d4e5f607182"],
    "guid": "a1b2c3",
    "user_id": "SIM001",
    "unfilled_quantity": 0,
    "app_id": 1234,
    "checksum": "ab" * 32,
}


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (kite_errors.InputException("Invalid `price`.", code=400), KiteOutcome.REJECTED),
        (
            kite_errors.OrderException("Order cannot be cancelled as it is complete.", code=400),
            KiteOutcome.REJECTED,
        ),
        (kite_errors.GeneralException("Insufficient funds", code=400), KiteOutcome.REJECTED),
        (
            kite_errors.NetworkException("Maximum allowed order modifications exceeded.", code=400),
            KiteOutcome.REJECTED,
        ),
        (kite_errors.TokenException("Incorrect `api_key` or `access_token`.", code=403), KiteOutcome.TOKEN),
        (kite_errors.NetworkException("Too many requests", code=429), KiteOutcome.THROTTLED),
        (kite_errors.GeneralException("Service unavailable", code=503), KiteOutcome.UNKNOWN),
        (kite_errors.NetworkException("OMS down", code=502), KiteOutcome.UNKNOWN),
        (kite_errors.DataException("Couldn't parse the JSON response"), KiteOutcome.UNKNOWN),
        (requests.exceptions.ReadTimeout("read timed out"), KiteOutcome.UNKNOWN),
        (requests.exceptions.ConnectionError("connection reset by peer"), KiteOutcome.UNKNOWN),
    ],
)
def test_what_a_kite_error_means_for_an_order(error: Exception, outcome: KiteOutcome) -> None:
    assert classify(error) is outcome


def test_an_update_reads_into_typed_facts() -> None:
    facts = facts_from_payload(UPDATE)

    assert facts.order_id == "260817000000012"
    assert facts.status is OrderStatus.COMPLETE
    assert facts.tags == ("0f3a9c2b1d4e5f607182", "0f3a9c2b1d4e5f607182")
    assert (facts.filled_quantity, facts.pending_quantity) == (65, 0)
    assert facts.average_price == Decimal("187.35")
    assert facts.price is None  # Kite's 0 for a MARKET order's price
    assert facts.updated_at == datetime(2026, 8, 17, 9, 20, 2, tzinfo=IST)


def test_kiteconnect_parsed_timestamps_are_read_as_ist() -> None:
    row = {**UPDATE, "exchange_update_timestamp": None, "exchange_timestamp": datetime(2026, 8, 17, 9, 20, 1)}

    assert facts_from_payload(row).updated_at == datetime(2026, 8, 17, 9, 20, 1, tzinfo=IST)
    assert kite_time("0000-01-01 09:35:36") is None  # Kite's broken year never crashes us
    assert kite_time("garbage") is None


@pytest.mark.parametrize(
    "broken",
    [
        {**UPDATE, "order_id": None},
        {**UPDATE, "status": ""},
        {**UPDATE, "filled_quantity": "lots"},
        {**UPDATE, "filled_quantity": -1},
        {**UPDATE, "average_price": "NaN"},
        {**UPDATE, "average_price": [1]},
    ],
)
def test_malformed_updates_are_refused(broken: dict) -> None:
    with pytest.raises(MalformedKiteOrder):
        facts_from_payload(broken)


def test_place_params_use_kites_names_and_our_tag() -> None:
    order = Order(
        variety="regular", exchange="NFO", tradingsymbol="NIFTY26AUG24800CE", transaction_type="SELL",
        quantity=130, product="MIS", order_type="SL", price=Decimal("101.5000"), trigger_price=Decimal("102.0000"),
        validity="DAY", kite_tag="0f3a9c2b1d4e5f607182",
    )  # fmt: skip

    assert place_params(order) == {
        "variety": "regular",
        "exchange": "NFO",
        "tradingsymbol": "NIFTY26AUG24800CE",
        "transaction_type": "SELL",
        "quantity": 130,
        "product": "MIS",
        "order_type": "SL",
        "validity": "DAY",
        "price": "101.5",
        "trigger_price": "102",
        "tag": "0f3a9c2b1d4e5f607182",
    }
