"""The pure order engine: parsing, validation, lifecycle, fills, modifications and cancels."""


import pytest

from kitesim.errors import InputException, NetworkException, OrderException
from kitesim.order_rules import on_tick, parse_modify, parse_place
from kitesim.orderbook import OrderBook, OrderDesk
from tests.kitesim.orderbook_world import (
    CALL,
    EXPIRED,
    INDEX,
    NOW,
    Instrument,
    Quote,
    Quotes,
    book_quote,
    request,
    statuses,
    update_statuses,
)

# -- parsing -----------------------------------------------------------------------------------------

FORM = {"exchange": "NFO", "tradingsymbol": "NIFTY26AUG24000CE", "transaction_type": "BUY", "quantity": "65",
        "product": "NRML", "order_type": "LIMIT", "price": "101.5", "validity": "DAY", "tag": "sim1"}


def test_parse_place_reads_the_client_form() -> None:
    parsed = parse_place("regular", FORM)
    assert parsed == request(price=101.5, tag="sim1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"exchange": ""}, "Missing `exchange`."),
        ({"exchange": "XYZ"}, "Invalid `exchange`."),
        ({"transaction_type": "HOLD"}, "Invalid `transaction_type`."),
        ({"order_type": "STOP"}, "Invalid `order_type`."),
        ({"product": "BO"}, "Invalid `product`."),
        ({"quantity": "abc"}, "Invalid `quantity`."),
        ({"price": "nan"}, "Invalid `price`."),
        ({"validity": "GTC"}, "Invalid `validity`."),
        ({"tag": "x" * 21}, "Invalid `tag`"),
        ({"tag": "bad;tag"}, "Invalid `tag`"),
    ],
)
def test_parse_place_rejects_bad_fields(changes: dict[str, str], message: str) -> None:
    with pytest.raises(InputException, match=message.replace("`", ".")):
        parse_place("regular", {**FORM, **changes})


def test_parse_place_rejects_unknown_and_unsupported_varieties() -> None:
    with pytest.raises(InputException, match=r"Invalid .variety"):
        parse_place("bo", FORM)
    with pytest.raises(InputException, match="iceberg"):
        parse_place("iceberg", FORM)


def test_parse_modify_keeps_unsent_fields() -> None:
    current = request(tag="keep")
    changed = parse_modify(current, {"price": "99.5", "variety": "regular", "order_id": "1"})
    assert changed == request(tag="keep", price=99.5)


def test_on_tick_tolerates_float_noise() -> None:
    assert on_tick(101.35, 0.05)
    assert on_tick(0.3, 0.1)
    assert not on_tick(101.33, 0.05)


# -- placement validation (no order created) ------------------------------------------------------------

@pytest.mark.parametrize(
    ("instrument", "changes", "message"),
    [
        (INDEX, {}, "expired or does not exist"),
        (EXPIRED, {}, "expired or does not exist"),
        (CALL, {"quantity": 0}, "Invalid .quantity"),
        (CALL, {"quantity": 100}, "multiple of lot size \\(65\\)"),
        (CALL, {"quantity": 1820}, "freeze limit of 1755"),
        (CALL, {"price": 100.03}, "multiple of tick size"),
        (CALL, {"price": 0.0}, "needs a price"),
        (CALL, {"product": "CNC"}, "not allowed for F&O"),
        (CALL, {"order_type": "SL-M", "trigger_price": 0.0}, "needs a trigger price"),
        (CALL, {"order_type": "SL", "trigger_price": 110.02, "price": 111.0}, "trigger price in the multiple"),
        (CALL, {"order_type": "SL", "trigger_price": 112.0, "price": 111.0}, "not be above the order price"),
        (CALL, {"order_type": "SL-M", "trigger_price": 90.0}, "higher than the last traded price"),
        (CALL, {"order_type": "SL-M", "transaction_type": "SELL", "trigger_price": 110.0}, "lower than the last"),
        (CALL, {"validity": "TTL"}, "validity_ttl"),
        (CALL, {"validity": "IOC", "order_type": "SL-M", "trigger_price": 120.0}, "IOC"),
        (CALL, {"disclosed_quantity": 10}, "Disclosed quantity"),
        (CALL, {"market_protection": 5.0}, "Market protection"),
    ],
)
def test_place_rejects_before_the_order_book(book: OrderBook, instrument: Instrument, changes: dict[str, object],
                                             message: str) -> None:
    with pytest.raises(InputException, match=message):
        book.place(request(**changes), instrument, book_quote(99.0, 101.0, 100.0), NOW)
    assert book.orders() == []
    assert book.drain_updates() == []


def test_place_checks_instrument_when_none_given(book: OrderBook) -> None:
    from kitesim.order_rules import check_instrument

    with pytest.raises(InputException, match="does not exist"):
        check_instrument(None, NOW)
    assert check_instrument(CALL, NOW) is CALL


# -- lifecycle and fills -----------------------------------------------------------------------------

def test_limit_below_the_ask_rests_open(book: OrderBook) -> None:
    order = book.place(request(price=95.0, tag="sim1"), CALL, book_quote(99.0, 101.0), NOW)
    assert order.status == "OPEN"
    assert statuses(book, order.order_id) == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING", "OPEN"]
    (listed,) = book.orders()
    assert listed["tag"] == "sim1" and listed["tags"] == ["sim1"]
    assert listed["pending_quantity"] == 65 and listed["exchange_order_id"] is not None
    assert update_statuses(book) == ["OPEN"]


def test_history_before_the_exchange_has_no_exchange_fields(book: OrderBook) -> None:
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    first = book.history(order.order_id)[0]
    assert first["exchange_order_id"] is None and first["exchange_timestamp"] is None
    assert first["order_timestamp"] == "2026-08-20 10:00:00"


def test_market_buy_fills_at_the_best_ask(book: OrderBook) -> None:
    order = book.place(request(order_type="MARKET", price=0.0), CALL, book_quote(99.0, 101.0), NOW)
    assert order.status == "COMPLETE" and order.average_price == 101.0
    assert update_statuses(book) == ["OPEN", "COMPLETE"]
    (trade,) = book.trades()
    assert trade["average_price"] == 101.0 and trade["quantity"] == 65 and trade["order_id"] == order.order_id


def test_market_sell_fills_at_the_best_bid(book: OrderBook) -> None:
    order = book.place(request(order_type="MARKET", transaction_type="SELL", price=0.0), CALL,
                       book_quote(99.0, 101.0), NOW)
    assert order.status == "COMPLETE" and order.average_price == 99.0


def test_market_without_depth_uses_the_last_price(book: OrderBook) -> None:
    order = book.place(request(order_type="MARKET", price=0.0), CALL, Quote(last_price=100.5), NOW)
    assert order.average_price == 100.5


def test_marketable_limit_takes_the_touch(book: OrderBook) -> None:
    order = book.place(request(price=105.0), CALL, book_quote(99.0, 101.0), NOW)
    assert order.status == "COMPLETE" and order.average_price == 101.0


def test_resting_limit_fills_at_its_price_when_crossed(desk: OrderDesk, book: OrderBook) -> None:
    quotes = Quotes()
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    book.drain_updates()
    quotes.by_token[CALL.instrument_token] = book_quote(96.0, 96.5)
    assert desk.sweep(quotes, NOW + 1) == {}
    quotes.by_token[CALL.instrument_token] = book_quote(93.0, 94.0)
    updates = desk.sweep(quotes, NOW + 2)
    assert [u["status"] for u in updates["key1"]] == ["COMPLETE"]
    assert order.status == "COMPLETE" and order.average_price == 95.0


def test_sweep_skips_tokens_without_quotes(desk: OrderDesk, book: OrderBook) -> None:
    book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    book.drain_updates()
    assert desk.sweep(Quotes(), NOW + 1) == {}


def test_stop_loss_waits_for_its_trigger_then_fills(desk: OrderDesk, book: OrderBook) -> None:
    quotes = Quotes()
    order = book.place(request(order_type="SL", trigger_price=110.0, price=111.0), CALL,
                       book_quote(99.0, 101.0, 100.0), NOW)
    assert order.status == "TRIGGER PENDING"
    book.drain_updates()
    quotes.by_token[CALL.instrument_token] = book_quote(108.0, 109.0, 109.0)
    desk.sweep(quotes, NOW + 1)
    assert order.status == "TRIGGER PENDING"
    quotes.by_token[CALL.instrument_token] = book_quote(110.0, 110.5, 110.2)
    updates = desk.sweep(quotes, NOW + 2)
    assert [u["status"] for u in updates["key1"]] == ["OPEN", "COMPLETE"]
    assert order.average_price == 110.5
    assert statuses(book, order.order_id)[-3:] == ["TRIGGER PENDING", "OPEN", "COMPLETE"]


def test_triggered_stop_limit_rests_when_the_market_gapped_past_it(desk: OrderDesk, book: OrderBook) -> None:
    quotes = Quotes()
    order = book.place(request(order_type="SL", trigger_price=110.0, price=111.0), CALL,
                       book_quote(99.0, 101.0, 100.0), NOW)
    quotes.by_token[CALL.instrument_token] = book_quote(114.0, 115.0, 114.5)
    desk.sweep(quotes, NOW + 1)
    assert order.status == "OPEN" and order.triggered


def test_stop_market_sell_fills_at_the_bid_once_triggered(desk: OrderDesk, book: OrderBook) -> None:
    quotes = Quotes()
    order = book.place(request(order_type="SL-M", transaction_type="SELL", trigger_price=90.0, price=0.0),
                       CALL, book_quote(99.0, 101.0, 100.0), NOW)
    quotes.by_token[CALL.instrument_token] = book_quote(88.0, 89.0, 89.5)
    desk.sweep(quotes, NOW + 1)
    assert order.status == "COMPLETE" and order.average_price == 88.0


def test_ioc_that_does_not_fill_is_cancelled(book: OrderBook) -> None:
    order = book.place(request(price=95.0, validity="IOC"), CALL, book_quote(99.0, 101.0), NOW)
    assert order.status == "CANCELLED" and order.cancelled_quantity == 65
    assert update_statuses(book) == ["OPEN", "CANCELLED"]


def test_ttl_order_expires_in_the_sweep(desk: OrderDesk, book: OrderBook) -> None:
    quotes = Quotes()
    quotes.by_token[CALL.instrument_token] = book_quote(99.0, 101.0)
    order = book.place(request(price=95.0, validity="TTL", validity_ttl=2), CALL, book_quote(99.0, 101.0), NOW)
    desk.sweep(quotes, NOW + 119)
    assert order.status == "OPEN"
    desk.sweep(quotes, NOW + 120)
    assert order.status == "CANCELLED"


def test_resting_orders_expire_when_the_trading_day_ends(desk: OrderDesk, book: OrderBook) -> None:
    quotes = Quotes()
    quotes.by_token[CALL.instrument_token] = book_quote(99.0, 101.0)
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    desk.sweep(quotes, NOW + 5 * 3600)
    assert order.status == "OPEN"
    book.drain_updates()
    updates = desk.sweep(quotes, NOW + 23 * 3600)
    assert order.status == "CANCELLED" and [u["status"] for u in updates["key1"]] == ["CANCELLED"]


# -- modify and cancel -------------------------------------------------------------------------------

def test_modify_records_kite_steps_and_publishes_update(book: OrderBook) -> None:
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    book.drain_updates()
    book.modify(order.order_id, "regular", {"price": "96"}, book_quote(99.0, 101.0), NOW + 5)
    assert order.request.price == 96.0
    assert statuses(book, order.order_id)[-4:] == ["MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "OPEN"]
    (update,) = book.drain_updates()
    assert update["status"] == "UPDATE" and update["price"] == 96.0 and update["modified"] is True


def test_modify_into_the_market_fills(book: OrderBook) -> None:
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    book.modify(order.order_id, "regular", {"order_type": "MARKET", "price": "0"}, book_quote(99.0, 101.0), NOW)
    assert order.status == "COMPLETE" and order.average_price == 101.0


def test_modify_validates_like_placement(book: OrderBook) -> None:
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    with pytest.raises(InputException, match="lot size"):
        book.modify(order.order_id, "regular", {"quantity": "70"}, None, NOW)
    assert order.request.quantity == 65 and order.modifications == 0


def test_twenty_sixth_modification_is_refused(book: OrderBook) -> None:
    order = book.place(request(price=50.0), CALL, book_quote(99.0, 101.0), NOW)
    for step in range(25):
        book.modify(order.order_id, "regular", {"price": f"{50 + step * 0.05:.2f}"}, None, NOW + step)
    with pytest.raises(NetworkException, match=r"Maximum allowed order modifications exceeded\."):
        book.modify(order.order_id, "regular", {"price": "60"}, None, NOW + 30)
    assert order.modifications == 25


def test_cancel_moves_to_cancelled(book: OrderBook) -> None:
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    book.drain_updates()
    book.cancel(order.order_id, "regular", NOW + 1)
    assert statuses(book, order.order_id)[-2:] == ["CANCEL PENDING", "CANCELLED"]
    (update,) = book.drain_updates()
    assert update["status"] == "CANCELLED" and update["cancelled_quantity"] == 65
    assert update["pending_quantity"] == 0 and update["unfilled_quantity"] == 0


def test_completed_or_cancelled_orders_cannot_change(book: OrderBook) -> None:
    done = book.place(request(order_type="MARKET", price=0.0), CALL, book_quote(99.0, 101.0), NOW)
    with pytest.raises(OrderException, match="cannot be cancelled as it is complete"):
        book.cancel(done.order_id, "regular", NOW)
    with pytest.raises(OrderException, match="cannot be modified"):
        book.modify(done.order_id, "regular", {"price": "1"}, None, NOW)


def test_unknown_order_and_wrong_variety(book: OrderBook) -> None:
    with pytest.raises(OrderException, match="order_id"):
        book.cancel("999", "regular", NOW)
    with pytest.raises(OrderException, match="order_id"):
        book.history("999")
    with pytest.raises(OrderException, match="order_id"):
        book.trades("999")
    order = book.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    with pytest.raises(InputException, match="variety"):
        book.cancel(order.order_id, "co", NOW)
