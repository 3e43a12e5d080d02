"""The pure order engine's accounts: margin, positions, autoslicing, postbacks, per-key books, properties."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitesim.errors import InputException, OrderException
from kitesim.order_fills import match_price, touch_price
from kitesim.order_rules import slice_quantities
from kitesim.orderbook import DeskConfig, OrderBook, OrderDesk, postback_checksum
from tests.kitesim.orderbook_world import (
    CALL,
    FUTURE,
    NOW,
    Quote,
    Quotes,
    account,
    book_quote,
    request,
    statuses,
    update_statuses,
)

# -- margin ------------------------------------------------------------------------------------------

def test_insufficient_funds_creates_a_rejected_order() -> None:
    book = OrderDesk(DeskConfig(opening_balance=5000.0)).book(account())
    order = book.place(request(price=100.0), CALL, book_quote(99.0, 101.0), NOW)
    assert order.status == "REJECTED"
    assert order.status_message == ("Insufficient funds. Required margin is 6500.00 but available margin is "
                                    "5000.00. Check the orderbook for open orders.")
    assert order.status_message_raw.startswith("RMS:Margin Exceeds,Required:6500.00, Available:5000.00")
    assert statuses(book, order.order_id) == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "REJECTED"]
    assert update_statuses(book) == ["REJECTED"]
    assert book.orders()[0]["exchange_order_id"] is None


def test_open_orders_block_margin() -> None:
    book = OrderDesk(DeskConfig(opening_balance=10_000.0)).book(account())
    first = book.place(request(price=100.0), CALL, book_quote(120.0, 121.0), NOW)
    second = book.place(request(price=100.0), CALL, book_quote(120.0, 121.0), NOW)
    assert first.status == "OPEN" and second.status == "REJECTED"
    assert "available margin is 3500.00" in second.status_message


def test_short_option_blocks_span_on_strike() -> None:
    book = OrderDesk(DeskConfig(opening_balance=100_000.0, span_rate=0.12)).book(account())
    order = book.place(request(transaction_type="SELL", order_type="MARKET", price=0.0), CALL,
                       book_quote(99.0, 101.0), NOW)
    assert order.status == "REJECTED"
    assert "Required margin is 187200.00" in order.status_message


def test_closing_a_position_needs_no_margin() -> None:
    book = OrderDesk(DeskConfig(opening_balance=7000.0)).book(account())
    book.place(request(order_type="MARKET", price=0.0), CALL, book_quote(99.0, 101.0), NOW)
    exit_order = book.place(request(order_type="MARKET", transaction_type="SELL", price=0.0), CALL,
                            book_quote(109.0, 111.0), NOW + 60)
    assert exit_order.status == "COMPLETE"
    margins = book.margins()
    assert margins["net"] == pytest.approx(7000.0 + 65 * 8.0)
    assert margins["utilised"]["m2m_realised"] == pytest.approx(-520.0)


def test_margins_show_premium_in_use(book: OrderBook) -> None:
    book.place(request(order_type="MARKET", price=0.0), CALL, book_quote(99.0, 101.0), NOW)
    margins = book.margins()
    assert margins["utilised"]["option_premium"] == pytest.approx(6565.0)
    assert margins["net"] == pytest.approx(1_000_000.0 - 6565.0)
    assert margins["available"]["opening_balance"] == 1_000_000.0
    assert margins["utilised"]["debits"] == pytest.approx(6565.0)


def test_futures_block_span_on_price(book: OrderBook) -> None:
    book.place(request(tradingsymbol=FUTURE.tradingsymbol, order_type="MARKET", price=0.0), FUTURE,
               book_quote(24000.0, 24000.2), NOW)
    assert book.margins()["utilised"]["span"] == pytest.approx(0.12 * 24000.2 * 65)


# -- positions ---------------------------------------------------------------------------------------

def test_positions_from_fills(book: OrderBook) -> None:
    quotes = Quotes()
    book.place(request(order_type="MARKET", price=0.0, quantity=130), CALL, book_quote(99.0, 101.0), NOW)
    book.place(request(order_type="MARKET", transaction_type="SELL", price=0.0), CALL, book_quote(104.0, 106.0),
               NOW + 1)
    quotes.by_token[CALL.instrument_token] = Quote(last_price=110.0, close=90.0)
    positions = book.positions(quotes)
    (net,) = positions["net"]
    assert positions["day"] == positions["net"]
    assert net["quantity"] == 65 and net["buy_quantity"] == 130 and net["sell_quantity"] == 65
    assert net["buy_price"] == 101.0 and net["sell_price"] == 104.0 and net["average_price"] == 101.0
    assert net["value"] == pytest.approx(65 * 104.0 - 130 * 101.0)
    assert net["pnl"] == pytest.approx(65 * 104.0 - 130 * 101.0 + 65 * 110.0)
    assert net["realised"] == pytest.approx(65 * 3.0)
    assert net["unrealised"] == pytest.approx(net["pnl"] - net["realised"])
    assert net["last_price"] == 110.0 and net["close_price"] == 90.0


def test_positions_without_a_quote_use_the_average(book: OrderBook) -> None:
    book.place(request(order_type="MARKET", price=0.0), CALL, book_quote(99.0, 101.0), NOW)
    (net,) = book.positions(Quotes())["net"]
    assert net["last_price"] == 101.0 and net["pnl"] == 0.0


# -- autoslice ---------------------------------------------------------------------------------------

def test_slice_quantities_follow_kites_rules() -> None:
    assert slice_quantities(3510, CALL) == [1755, 1755]
    assert slice_quantities(4030, CALL) == [1755, 1755, 520]
    assert slice_quantities(17550, CALL) == [1755] * 10
    with pytest.raises(InputException, match="greater than or equal to 3510 for order slicing"):
        slice_quantities(1820, CALL)
    with pytest.raises(InputException, match="less than or equal to 17550"):
        slice_quantities(17615, CALL)
    with pytest.raises(InputException, match="lot size"):
        slice_quantities(3511, CALL)


def test_autoslice_places_one_tagged_order_per_slice(book: OrderBook) -> None:
    result = book.place_autoslice(request(price=95.0, quantity=4030, tag="big"), CALL, book_quote(99.0, 101.0), NOW)
    parent = result["order_id"]
    children = [child["order_id"] for child in result["children"]]
    assert children[0] == parent and len(children) == 3
    orders = {order["order_id"]: order for order in book.orders()}
    assert [orders[i]["quantity"] for i in children] == [1755, 1755, 520]
    assert all(orders[i]["tags"] == ["big", "autoslice", f"autoslice:{parent}"] for i in children)
    assert all(orders[i]["tag"] == "big" for i in children)


def test_autoslice_with_invalid_slices_places_nothing() -> None:
    book = OrderDesk(DeskConfig(opening_balance=1e12)).book(account())
    bad_tick = request(price=95.01, quantity=3510)
    with pytest.raises(InputException, match="tick size"):
        book.place_autoslice(bad_tick, CALL, book_quote(99.0, 101.0), NOW)
    assert book.orders() == []


def test_autoslice_children_can_be_rejected_for_margin() -> None:
    book = OrderDesk(DeskConfig(opening_balance=200_000.0)).book(account())
    result = book.place_autoslice(request(price=95.0, quantity=3510), CALL, book_quote(99.0, 101.0), NOW)
    statuses_by_id = {order["order_id"]: order["status"] for order in book.orders()}
    assert [statuses_by_id[c["order_id"]] for c in result["children"]] == ["OPEN", "REJECTED"]


# -- postbacks and ids -------------------------------------------------------------------------------

def test_update_payload_has_postback_shape_and_checksum(book: OrderBook) -> None:
    book.place(request(order_type="MARKET", price=0.0, tag="t1"), CALL, book_quote(99.0, 101.0), NOW)
    complete = book.drain_updates()[-1]
    expected = hashlib.sha256(f"{complete['order_id']}{complete['order_timestamp']}key1-secret".encode()).hexdigest()
    assert complete["checksum"] == expected == postback_checksum(
        complete["order_id"], complete["order_timestamp"], "key1-secret")
    assert complete["user_id"] == "SIM001" and complete["unfilled_quantity"] == 0
    assert isinstance(complete["app_id"], int)
    assert complete["tag"] == "t1" and complete["filled_quantity"] == 65 and complete["average_price"] == 101.0
    assert complete["exchange_timestamp"] == "2026-08-20 10:00:00"


def test_books_are_per_api_key_with_unique_ids(desk: OrderDesk) -> None:
    first, second = desk.book(account("a")), desk.book(account("b"))
    assert desk.book(account("a")) is first
    one = first.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    two = second.place(request(price=95.0), CALL, book_quote(99.0, 101.0), NOW)
    assert one.order_id != two.order_id and len(one.order_id) == 15 and one.order_id.startswith("260820")
    assert [o["order_id"] for o in first.orders()] == [one.order_id]
    with pytest.raises(OrderException):
        first.history(two.order_id)


# -- properties --------------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=20_000).map(lambda ticks: round(ticks * 0.05, 2))


@given(bid=prices, spread=st.integers(min_value=0, max_value=40), limit=prices, buy=st.booleans(),
       aggressive=st.booleans())
def test_limit_fills_never_worse_than_the_limit(bid: float, spread: int, limit: float, buy: bool,
                                                 aggressive: bool) -> None:
    quote = book_quote(bid, round(bid + spread * 0.05, 2))
    req = request(price=limit, transaction_type="BUY" if buy else "SELL")
    fill = match_price(req, quote, aggressive=aggressive)
    touch = touch_price(quote, buy)
    assert touch is not None
    crosses = touch <= limit if buy else touch >= limit
    assert (fill is not None) == crosses
    if fill is not None:
        assert (fill <= limit) if buy else (fill >= limit)


@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=5), prices), min_size=1, max_size=12))
def test_positions_quantity_and_pnl_identity(trades: list[tuple[bool, int, float]]) -> None:
    book = OrderDesk(DeskConfig(opening_balance=1e12)).book(account())
    for step, (buy, lots, price) in enumerate(trades):
        side = "BUY" if buy else "SELL"
        book.place(request(order_type="MARKET", price=0.0, quantity=65 * lots, transaction_type=side), CALL,
                   book_quote(price, price, price), NOW + step)
    quotes = Quotes()
    quotes.by_token[CALL.instrument_token] = Quote(last_price=123.45)
    (net,) = book.positions(quotes)["net"]
    signed = sum(65 * lots * (1 if buy else -1) for buy, lots, _ in trades)
    assert net["quantity"] == signed
    assert net["pnl"] == pytest.approx(net["value"] + signed * 123.45, abs=0.02)
    assert net["realised"] + net["unrealised"] == pytest.approx(net["pnl"], abs=0.02)
