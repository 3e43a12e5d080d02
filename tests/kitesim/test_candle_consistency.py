"""kitesim's candles for past minutes agree with the ticks it streamed (README "Candles and the stream").

A client subscribes in full mode to NIFTY's index, its near future and an at-the-money call, collects
every tick across one whole simulated minute (kitesim at 2x, so each half-second publication slot
reaches the socket), and compares that minute's candle from the official client's historical_data.
"""

import json
from datetime import date, datetime

import numpy as np
import pytest
from kiteconnect import KiteConnect
from websockets.sync.client import connect

from kitesim.market import Market
from kitesim.paths import session_open_epoch
from kitesim.testing import KitesimThread
from ticks.feeds.protocol import decode_frame
from ticks.market_time import IST

pytestmark = pytest.mark.integration
MINUTE_START = session_open_epoch(date(2026, 8, 17)) + 30 * 60  # 09:45:00 IST, a fixed instant
LEAD_IN_S = 3.0


def _tokens(market: Market) -> tuple[int, int, int]:
    rows = market.universe.all()
    future = min(
        (r for r in rows if r.underlying == "NIFTY" and r.instrument_type == "FUT"), key=lambda r: r.expiry
    )
    spot = market.spot("NIFTY")
    calls = [r for r in rows if r.underlying == "NIFTY" and r.instrument_type == "CE"]
    nearest = min(r.expiry for r in calls)
    atm = min((r for r in calls if r.expiry == nearest), key=lambda r: abs(r.strike - spot))
    return 256265, future.instrument_token, atm.instrument_token


def _collect(sim: KitesimThread, tokens: tuple[int, ...], until: float) -> np.ndarray:
    url = f"{sim.ws_root}/?api_key={sim.api_key}&access_token={sim.access_token}"
    rows = []
    with connect(url, open_timeout=10, max_size=None) as ws:
        ws.send(json.dumps({"a": "subscribe", "v": list(tokens)}))
        ws.send(json.dumps({"a": "mode", "v": ["full", list(tokens)]}))
        while sim.state.clock.now() < until:
            message = ws.recv(timeout=10)
            if isinstance(message, bytes) and len(message) > 2:
                rows.append(decode_frame(message))
    return np.concatenate(rows)


def _candle(kite: KiteConnect, token: int) -> dict:
    moment = datetime.fromtimestamp(MINUTE_START, IST).strftime("%Y-%m-%d %H:%M:%S")
    (candle,) = kite.historical_data(token, moment, moment, "minute", oi=True)
    assert candle["date"].timestamp() == MINUTE_START
    return candle


def _check_tradable(candle: dict, ticks: np.ndarray) -> int:
    """Every trade of the minute reached the stream, so the candle is exactly its trades."""
    ticks = ticks[ticks["mode"] == "full"]
    step = np.diff(ticks["volume_traded"])
    new_trade = np.concatenate([[False], step > 0])
    # One trade per observed change: the ticks lost none (LTQ is the last trade's size).
    assert np.array_equal(step[step > 0], ticks["last_traded_quantity"][1:][step > 0])
    in_minute = (ticks["last_trade_time"] >= MINUTE_START) & (ticks["last_trade_time"] < MINUTE_START + 60)
    trades = ticks[new_trade & in_minute]
    base = ticks[ticks["last_trade_time"] < MINUTE_START]["volume_traded"].max()
    assert trades.size > 0
    prices = trades["last_price"]
    assert candle["open"] == prices[0] and candle["close"] == prices[-1]
    assert candle["high"] == prices.max() and candle["low"] == prices.min()
    assert candle["volume"] == trades["volume_traded"][-1] - base
    return trades.size


def _check_index(candle: dict, ticks: np.ndarray) -> None:
    """An index prints a value per half-second slot, sent only when it changed."""
    stamps = ticks["exchange_timestamp"]
    carried = ticks[stamps < MINUTE_START]["last_price"][-1]
    values = ticks[(stamps >= MINUTE_START) & (stamps < MINUTE_START + 60)]["last_price"]
    assert values.size > 60
    assert candle["open"] in (carried, values[0])  # the first slot's value, resent only if it changed
    assert candle["close"] == values[-1]
    assert candle["high"] == max(values.max(), candle["open"]) and candle["low"] == min(
        values.min(), candle["open"]
    )
    assert candle["volume"] == 0


def test_candles_match_the_streamed_minute() -> None:
    with KitesimThread(seed=7, speed=2, start_epoch=MINUTE_START - LEAD_IN_S) as sim:
        tokens = _tokens(sim.state.market)
        ticks = _collect(sim, tokens, until=MINUTE_START + 61)
        kite = KiteConnect(sim.api_key, access_token=sim.access_token, root=sim.root)
        index, future, call = tokens
        _check_index(_candle(kite, index), ticks[ticks["instrument_token"] == index])
        assert _check_tradable(_candle(kite, future), ticks[ticks["instrument_token"] == future]) > 20
        assert _check_tradable(_candle(kite, call), ticks[ticks["instrument_token"] == call]) > 20
