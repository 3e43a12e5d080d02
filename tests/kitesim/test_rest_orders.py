"""Orders, trades, positions and order updates through the official client against the live market."""

import asyncio
from typing import Any

import pytest
from kiteconnect.exceptions import InputException, NetworkException, OrderException

from kitesim.orderbook import postback_checksum
from kitesim.testing import KitesimThread
from tests.kitesim.rest_drive import (
    PacedKite,
    advance_until,
    atm_option,
    near_month_options,
    orders_by_id,
    paced_client,
    statuses,
    ticks,
    touch,
)

pytestmark = pytest.mark.integration

ACCEPTED = ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING"]


@pytest.fixture
def paced(kitesim_server: KitesimThread) -> PacedKite:
    return paced_client(kitesim_server)


def place(kite: PacedKite, symbol: str, side: str, quantity: int, order_type: str, **extra: Any) -> str:
    return kite.place_order("regular", "NFO", symbol, side, quantity, "NRML", order_type, **extra)


def test_market_order_completes_with_a_trade_and_a_position(
    kitesim_server: KitesimThread, paced: PacedKite
) -> None:
    option = atm_option(kitesim_server)
    before = paced.margins("equity")
    order_id = place(paced, option.tradingsymbol, "BUY", option.lot_size, "MARKET", tag="mkt1")
    history = paced.order_history(order_id)
    assert statuses(history) == [*ACCEPTED, "OPEN", "COMPLETE"]
    done = history[-1]
    assert done["filled_quantity"] == option.lot_size and done["pending_quantity"] == 0
    assert done["average_price"] > 0 and done["tag"] == "mkt1" and len(done["order_id"]) == 15
    (trade,) = paced.order_trades(order_id)
    assert trade["average_price"] == done["average_price"] and trade["quantity"] == option.lot_size
    assert paced.trades() == [trade]
    (net,) = paced.positions()["net"]
    assert net["tradingsymbol"] == option.tradingsymbol and net["quantity"] == option.lot_size
    assert net["buy_price"] == done["average_price"]
    after = paced.margins("equity")
    premium = option.lot_size * done["average_price"]
    assert after["utilised"]["option_premium"] == pytest.approx(premium, abs=0.01)
    assert after["net"] == pytest.approx(before["net"] - premium, abs=0.01)
    assert paced.holdings() == []


def test_market_sell_fills_at_or_below_the_ask(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    order_id = place(paced, option.tradingsymbol, "SELL", option.lot_size, "MARKET")
    done = paced.order_history(order_id)[-1]
    _, ask, _ = touch(kitesim_server, option)
    assert done["status"] == "COMPLETE" and 0 < done["average_price"] < ask * 1.2
    assert paced.positions()["net"][0]["quantity"] == -option.lot_size


def test_limit_rests_then_a_modification_fills_it(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    bid, ask, _ = touch(kitesim_server, option)
    order_id = place(
        paced, option.tradingsymbol, "BUY", option.lot_size, "LIMIT", price=ticks(option, bid, -40)
    )
    resting = orders_by_id(paced)[order_id]
    assert resting["status"] == "OPEN" and resting["pending_quantity"] == option.lot_size
    assert paced.modify_order("regular", order_id, price=ticks(option, ask, 40)) == order_id
    history = paced.order_history(order_id)
    assert statuses(history)[-5:] == [
        "MODIFY VALIDATION PENDING",
        "MODIFY PENDING",
        "MODIFIED",
        "OPEN",
        "COMPLETE",
    ]
    assert history[-1]["modified"] is True
    assert history[-1]["average_price"] <= ticks(option, ask, 40)


def test_resting_limits_fill_as_the_market_moves(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    bid, ask, _ = touch(kitesim_server, option)
    buy = place(paced, option.tradingsymbol, "BUY", option.lot_size, "LIMIT", price=ticks(option, bid, -2))
    sell = place(paced, option.tradingsymbol, "SELL", option.lot_size, "LIMIT", price=ticks(option, ask, 2))
    assert {orders_by_id(paced)[i]["status"] for i in (buy, sell)} == {"OPEN"}

    def one_filled() -> bool:
        return any(orders_by_id(paced)[i]["status"] == "COMPLETE" for i in (buy, sell))

    assert advance_until(kitesim_server, one_filled)
    for order_id in (buy, sell):
        last = paced.order_history(order_id)[-1]
        if last["status"] == "COMPLETE":
            limit = last["price"]
            assert last["average_price"] == limit
            assert [t["order_id"] for t in paced.order_trades(order_id)] == [order_id]


def test_cancel_and_its_errors(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    bid, _, _ = touch(kitesim_server, option)
    order_id = place(
        paced, option.tradingsymbol, "BUY", option.lot_size, "LIMIT", price=ticks(option, bid, -40), tag="cx"
    )
    assert paced.cancel_order("regular", order_id) == order_id
    last = paced.order_history(order_id)[-1]
    assert last["status"] == "CANCELLED" and last["cancelled_quantity"] == option.lot_size
    assert statuses(paced.order_history(order_id))[-2:] == ["CANCEL PENDING", "CANCELLED"]
    with pytest.raises(OrderException) as again:
        paced.cancel_order("regular", order_id)
    assert again.value.code == 400
    with pytest.raises(OrderException):
        paced.cancel_order("regular", "260101999999999")
    with pytest.raises(OrderException):
        paced.order_history("260101999999999")


def stop_orders(paced: PacedKite, server: KitesimThread, order_type: str) -> list[str]:
    """A buy stop two ticks above and a sell stop two ticks below the last price.

    An SL's limit sits half the price beyond its trigger, so it fills however the market gaps through
    the trigger: the session kitesim replays depends on the date, and one of them (2025-09-04) drops
    100 NIFTY points in its first minute, which took an ATM call 30 % below a 10-rupee limit.
    """
    option = atm_option(server)
    _, _, last = touch(server, option)
    up, down = ticks(option, last, 2), ticks(option, last, -2)
    slack = round(last / 2 / option.tick_size)
    extra_up = {"price": ticks(option, up, slack)} if order_type == "SL" else {}
    extra_down = {"price": ticks(option, down, -slack)} if order_type == "SL" else {}
    return [
        place(paced, option.tradingsymbol, "BUY", option.lot_size, order_type, trigger_price=up, **extra_up),
        place(
            paced, option.tradingsymbol, "SELL", option.lot_size, order_type, trigger_price=down, **extra_down
        ),
    ]


@pytest.mark.parametrize("order_type", ["SL", "SL-M"])
def test_stop_orders_trigger_then_fill(
    kitesim_server: KitesimThread, paced: PacedKite, order_type: str
) -> None:
    order_ids = stop_orders(paced, kitesim_server, order_type)
    assert all(orders_by_id(paced)[i]["status"] == "TRIGGER PENDING" for i in order_ids)

    def one_filled() -> bool:
        return any(orders_by_id(paced)[i]["status"] == "COMPLETE" for i in order_ids)

    assert advance_until(kitesim_server, one_filled, step_s=15.0)
    for order_id in order_ids:
        steps = statuses(paced.order_history(order_id))
        if steps[-1] == "COMPLETE":
            assert steps == [*ACCEPTED, "TRIGGER PENDING", "OPEN", "COMPLETE"]


def test_kite_input_errors(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    symbol, lot = option.tradingsymbol, option.lot_size
    bid, _, _ = touch(kitesim_server, option)
    cases = [
        ("regular", symbol, lot + 1, "NRML", "LIMIT", {"price": bid}, "lot size"),
        (
            "regular",
            symbol,
            lot * (option.freeze_quantity // lot + 1),
            "NRML",
            "LIMIT",
            {"price": bid},
            "freeze",
        ),
        ("regular", symbol, lot, "NRML", "LIMIT", {"price": bid + option.tick_size / 2}, "tick size"),
        ("regular", "NIFTY00JAN100CE", lot, "NRML", "MARKET", {}, "expired or does not exist"),
        ("regular", symbol, lot, "CNC", "MARKET", {}, "not allowed for F&O"),
        ("regular", symbol, lot, "NRML", "LIMIT", {}, "needs a price"),
        ("regular", symbol, lot, "NRML", "MARKET", {"tag": "a" * 21}, "tag"),
        ("bo", symbol, lot, "NRML", "MARKET", {}, "variety"),
    ]
    for variety, tradingsymbol, quantity, product, order_type, extra, message in cases:
        with pytest.raises(InputException, match=message) as refused:
            paced.place_order(variety, "NFO", tradingsymbol, "BUY", quantity, product, order_type, **extra)
        assert refused.value.code == 400
    with pytest.raises(InputException, match="expired or does not exist"):
        paced.place_order("regular", "NSE", "NIFTY 50", "BUY", 1, "NRML", "MARKET")
    assert paced.orders() == []


def test_twenty_six_modifications_are_one_too_many(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    bid, _, _ = touch(kitesim_server, option)
    low = ticks(option, bid, -60)
    order_id = place(paced, option.tradingsymbol, "BUY", option.lot_size, "LIMIT", price=low)
    for step in range(25):
        paced.modify_order("regular", order_id, price=ticks(option, low, -(step % 2)))
    with pytest.raises(NetworkException, match=r"Maximum allowed order modifications exceeded\."):
        paced.modify_order("regular", order_id, price=low)
    assert orders_by_id(paced)[order_id]["status"] == "OPEN"


def test_insufficient_funds_reject_with_kites_message(
    kitesim_server: KitesimThread, paced: PacedKite
) -> None:
    option = near_month_options(kitesim_server)[-1]
    _, ask, _ = touch(kitesim_server, option)
    quantity = option.freeze_quantity // option.lot_size * option.lot_size
    rejected = None
    for _ in range(12):
        order_id = place(
            paced, option.tradingsymbol, "SELL", quantity, "LIMIT", price=ticks(option, ask, 200)
        )
        last = paced.order_history(order_id)[-1]
        if last["status"] == "REJECTED":
            rejected = last
            break
    assert rejected is not None
    assert rejected["status_message"].startswith("Insufficient funds. Required margin is ")
    assert rejected["status_message_raw"].startswith("RMS:Margin Exceeds,Required:")
    assert rejected["exchange_order_id"] is None


def test_every_change_is_published_as_an_order_update(
    kitesim_server: KitesimThread, paced: PacedKite
) -> None:
    state = kitesim_server.state
    queue: asyncio.Queue[dict[str, Any]] = kitesim_server.call(
        state.order_updates.subscribe, kitesim_server.api_key
    )
    option = atm_option(kitesim_server)
    bid, _, _ = touch(kitesim_server, option)
    order_id = place(
        paced, option.tradingsymbol, "BUY", option.lot_size, "LIMIT", price=ticks(option, bid, -40), tag="upd"
    )
    paced.modify_order("regular", order_id, price=ticks(option, bid, -41))
    paced.cancel_order("regular", order_id)

    def drain() -> list[dict[str, Any]]:
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    updates = kitesim_server.call(drain)
    assert [u["status"] for u in updates] == ["OPEN", "UPDATE", "CANCELLED"]
    for update in updates:
        assert update["order_id"] == order_id and update["tag"] == "upd"
        assert update["checksum"] == postback_checksum(
            order_id, update["order_timestamp"], kitesim_server.api_secret
        )
        assert {"user_id", "unfilled_quantity", "app_id"} <= set(update)


def test_autoslice_splits_at_the_freeze_quantity(kitesim_server: KitesimThread, paced: PacedKite) -> None:
    option = atm_option(kitesim_server)
    bid, _, _ = touch(kitesim_server, option)
    size = option.freeze_quantity // option.lot_size * option.lot_size
    response = paced.place_autoslice_order(
        "regular",
        "NFO",
        option.tradingsymbol,
        "BUY",
        2 * size + option.lot_size,
        "NRML",
        "LIMIT",
        price=ticks(option, bid, -40),
        tag="slice",
    )
    parent = response["order_id"]
    children = [child["order_id"] for child in response["children"]]
    assert children[0] == parent and len(children) == 3
    book = orders_by_id(paced)
    assert [book[i]["quantity"] for i in children] == [size, size, option.lot_size]
    assert all(f"autoslice:{parent}" in book[i]["tags"] and book[i]["tag"] == "slice" for i in children)
    with pytest.raises(InputException, match="for order slicing"):
        paced.place_autoslice_order(
            "regular",
            "NFO",
            option.tradingsymbol,
            "BUY",
            option.lot_size,
            "NRML",
            "LIMIT",
            price=ticks(option, bid, -40),
        )


def test_orders_are_kept_per_api_key() -> None:
    with KitesimThread(
        seed=7, accounts=["alpha:alphasecret:alphatoken", "beta:betasecret:betatoken"]
    ) as server:
        alpha = PacedKite("alpha", access_token="alphatoken", root=server.root)
        beta = PacedKite("beta", access_token="betatoken", root=server.root)
        option = atm_option(server)
        bid, _, _ = touch(server, option)
        order_id = place(
            alpha, option.tradingsymbol, "BUY", option.lot_size, "LIMIT", price=ticks(option, bid, -40)
        )
        assert list(orders_by_id(alpha)) == [order_id]
        assert beta.orders() == [] and beta.positions() == {"net": [], "day": []}
        with pytest.raises(OrderException):
            beta.cancel_order("regular", order_id)
        assert alpha.profile()["user_id"] != beta.profile()["user_id"]
