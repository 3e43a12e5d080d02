"""The pure order engine: validation, lifecycle, fills, modifications, margin, positions, postbacks."""

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitesim.accounts import SimAccount
from kitesim.clock import IST
from kitesim.errors import InputException, NetworkException, OrderException
from kitesim.order_fills import match_price, touch_price
from kitesim.order_rules import OrderRequest, on_tick, parse_modify, parse_place, slice_quantities
from kitesim.orderbook import DeskConfig, OrderBook, OrderDesk, postback_checksum

NOW = datetime(2026, 8, 20, 10, 0, 0, tzinfo=IST).timestamp()


@dataclass(frozen=True)
class Instrument:
    instrument_token: int
    tradingsymbol: str
    exchange: str = "NFO"
    segment: str = "NFO-OPT"
    instrument_type: str = "CE"
    expiry: date | None = date(2026, 8, 25)
    strike: float = 24000.0
    tick_size: float = 0.05
    lot_size: int = 65
    freeze_quantity: int = 1755
    name: str = "NIFTY"
    underlying: str = "NIFTY"
    exchange_token: int = 0

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


@dataclass
class Level:
    price: float
    quantity: int
    orders: int = 1


@dataclass
class Quote:
    last_price: float
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)
    close: float = 100.0


def book_quote(bid: float, ask: float, last: float | None = None) -> Quote:
    last_price = last if last is not None else round((bid + ask) / 2, 2)
    return Quote(last_price, [Level(bid, 650)], [Level(ask, 650)])


class Quotes:
    def __init__(self) -> None:
        self.by_token: dict[int, Quote] = {}

    def quote(self, token: int) -> Quote:
        return self.by_token[token]


CALL = Instrument(14866434, "NIFTY26AUG24000CE")
FUTURE = Instrument(14866435, "NIFTY26AUGFUT", segment="NFO-FUT", instrument_type="FUT", strike=0.0, tick_size=0.1)
INDEX = Instrument(256265, "NIFTY 50", exchange="NSE", segment="INDICES", instrument_type="EQ", expiry=None)
EXPIRED = Instrument(1, "NIFTY26AUG18000CE", expiry=date(2026, 8, 18))


def account(key: str = "key1") -> SimAccount:
    return SimAccount(api_key=key, api_secret=f"{key}-secret", access_token="tok", user_id="SIM001",
                      token_expires_at=NOW + 86400)


def request(**changes: object) -> OrderRequest:
    fields: dict[str, object] = {
        "variety": "regular", "exchange": "NFO", "tradingsymbol": CALL.tradingsymbol,
        "transaction_type": "BUY", "order_type": "LIMIT", "product": "NRML", "quantity": 65, "price": 100.0,
    }
    fields.update(changes)
    return OrderRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def desk() -> OrderDesk:
    return OrderDesk(DeskConfig(opening_balance=1_000_000.0))


@pytest.fixture
def book(desk: OrderDesk) -> OrderBook:
    return desk.book(account())


def statuses(book: OrderBook, order_id: str) -> list[str]:
    return [step["status"] for step in book.history(order_id)]


def update_statuses(book: OrderBook) -> list[str]:
    return [update["status"] for update in book.drain_updates()]


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
