"""Kite's rate limits, injected REST faults, and a server that survives hostile input."""

import time
from typing import Any

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect.exceptions import GeneralException, KiteException, NetworkException

from kitesim.testing import KitesimThread
from tests.kitesim.rest_drive import atm_option, paced_client, ticks, touch

pytestmark = pytest.mark.integration


def set_faults(server: KitesimThread, **changes: Any) -> None:
    server.call(server.state.faults.update, changes)


def resting_buy(kite: KiteConnect, server: KitesimThread, **extra: Any) -> str:
    option = atm_option(server)
    bid, _, _ = touch(server, option)
    return kite.place_order("regular", "NFO", option.tradingsymbol, "BUY", option.lot_size, "NRML", "LIMIT",
                            price=ticks(option, bid, -40), **extra)


def test_eleventh_order_in_a_second_is_refused(kitesim_server: KitesimThread, kite: KiteConnect) -> None:
    option = atm_option(kitesim_server)
    bid, _, _ = touch(kitesim_server, option)
    price = ticks(option, bid, -40)
    placed, refused = [], []
    started = time.monotonic()
    for _ in range(11):
        try:
            placed.append(kite.place_order("regular", "NFO", option.tradingsymbol, "BUY", option.lot_size,
                                           "NRML", "LIMIT", price=price))
        except NetworkException as error:
            refused.append(error)
    assert time.monotonic() - started < 1.0, "the machine was too slow to send 11 orders in a second"
    assert len(placed) == 10 and len(refused) == 1
    assert refused[0].code == 429 and str(refused[0]) == "Too many requests"
    time.sleep(1.05)
    assert len(kite.orders()) == 10


def test_second_quote_in_a_second_is_refused(kitesim_server: KitesimThread, kite: KiteConnect) -> None:
    assert kite.ltp("NSE:NIFTY 50")
    with pytest.raises(NetworkException, match="Too many requests") as refused:
        kite.quote("NSE:NIFTY 50")
    assert refused.value.code == 429
    time.sleep(1.05)
    assert kite.ohlc("NSE:NIFTY 50")


def test_fourth_historical_call_in_a_second_is_refused(kitesim_server: KitesimThread, kite: KiteConnect) -> None:
    token = atm_option(kitesim_server).instrument_token
    args = (token, "2026-01-01 09:15:00", "2025-12-01 09:15:00", "minute")  # refused as a bad range: still counted
    outcomes = []
    for _ in range(4):
        try:
            kite.historical_data(*args)
        except NetworkException as error:
            outcomes.append(error.code)
        except KiteException as error:  # any other Kite error means the call was let through
            outcomes.append(type(error).__name__)
    assert outcomes == ["InputException", "InputException", "InputException", 429]


def test_eleventh_plain_call_in_a_second_is_refused(kite: KiteConnect) -> None:
    for _ in range(10):
        kite.orders()
    with pytest.raises(NetworkException, match="Too many requests"):
        kite.trades()


def test_injected_5xx_burst_then_recovery(kitesim_server: KitesimThread) -> None:
    kite = paced_client(kitesim_server)
    set_faults(kitesim_server, rest_5xx_next=2)
    for _ in range(2):
        with pytest.raises(GeneralException) as failed:
            kite.profile()
        assert failed.value.code == 503
    assert kite.profile()["user_id"]


def test_injected_429_burst_then_recovery(kitesim_server: KitesimThread) -> None:
    kite = paced_client(kitesim_server)
    set_faults(kitesim_server, rest_429_next=3)
    for _ in range(3):
        with pytest.raises(NetworkException, match="Too many requests") as refused:
            kite.margins()
        assert refused.value.code == 429
    assert kite.margins()


def test_injected_latency_delays_every_response(kitesim_server: KitesimThread) -> None:
    kite = paced_client(kitesim_server)
    set_faults(kitesim_server, rest_latency_ms=400.0)
    started = time.monotonic()
    kite.profile()
    assert time.monotonic() - started >= 0.4
    set_faults(kitesim_server, rest_latency_ms=0.0)
    started = time.monotonic()
    kite.profile()
    assert time.monotonic() - started < 0.4


def test_order_timeout_leaves_the_order_in_the_book(kitesim_server: KitesimThread) -> None:
    impatient = paced_client(kitesim_server, timeout=1)
    set_faults(kitesim_server, order_timeout_next=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        resting_buy(impatient, kitesim_server, tag="lost1")
    assert time.monotonic() - started < 5
    (order,) = paced_client(kitesim_server).orders()
    assert order["tag"] == "lost1" and order["status"] == "OPEN"
    assert resting_buy(impatient, kitesim_server, tag="next")  # the fault was for one placement only


HOSTILE_FORMS = [
    {"exchange": "NFO", "tradingsymbol": "X", "transaction_type": "BUY", "quantity": "1e999", "product": "NRML",
     "order_type": "MARKET"},
    {"exchange": "NFO", "tradingsymbol": "X" * 5000, "transaction_type": "BUY", "quantity": "65",
     "product": "NRML", "order_type": "LIMIT", "price": "inf"},
    {"quantity": "-65", "price": "abc"},
    {},
]


@pytest.mark.parametrize("form", HOSTILE_FORMS)
def test_hostile_order_forms_get_input_errors(kitesim_server: KitesimThread, form: dict[str, str]) -> None:
    headers = {"X-Kite-Version": "3",
               "Authorization": f"token {kitesim_server.api_key}:{kitesim_server.access_token}"}
    response = requests.post(f"{kitesim_server.root}/orders/regular", data=form, headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.json()["error_type"] == "InputException"
    garbage = requests.put(f"{kitesim_server.root}/orders/regular/abc", data=b"\xff\xfe%%%=&&", headers=headers,
                           timeout=5)
    assert garbage.status_code == 400 and garbage.json()["error_type"] == "OrderException"
    time.sleep(0.25)
    assert paced_client(kitesim_server).profile()


def test_hostile_queries_do_not_break_the_server(kitesim_server: KitesimThread) -> None:
    headers = {"X-Kite-Version": "3",
               "Authorization": f"token {kitesim_server.api_key}:{kitesim_server.access_token}"}
    probes = [
        ("/quote?i=" + "%00" * 50, 200),  # an unknown key is left out, not refused
        ("/instruments/historical/abc/minute?from=x&to=y", 400),
        ("/instruments/historical/256265/day?from=2026-01-01&to=2026-01-02&oi=maybe", 400),
        ("/orders/" + "9" * 300, 400),
        ("/user/margins/%2e%2e", 400),
    ]
    for path, status in probes:
        response = requests.get(kitesim_server.root + path, headers=headers, timeout=5)
        assert response.status_code == status, path
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["status"] == ("success" if status == 200 else "error")
        time.sleep(1.05)
    assert paced_client(kitesim_server).profile()
