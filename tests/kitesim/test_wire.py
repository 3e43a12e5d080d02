"""Binary frames against the spec's offsets and the official client's own decoder."""

import struct
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from kitesim.wire import (
    DEPTH_LEVELS,
    HEARTBEAT,
    MODE_FULL,
    MODE_LTP,
    MODE_QUOTE,
    TickColumns,
    decode_uniform,
    encode_frame,
    garble_frame,
    packet_count,
    split_packets,
)

NFO_TOKEN = 12073986  # BANKNIFTY18JAN23500CE in the official mocks: 47164 << 8 | 2
BFO_TOKEN = 825490 << 8 | 5
INDEX_TOKEN = 256265
CDS_TOKEN = 1234 << 8 | 3
BCD_TOKEN = 4321 << 8 | 6
SCALARS = ("last", "ltq", "atp", "volume", "buy_qty", "sell_qty", "open", "high", "low", "close", "ltt",
           "oi", "oi_day_high", "oi_day_low", "timestamp")


def _columns(quotes: list[dict[str, Any]]) -> TickColumns:
    cols = TickColumns.for_tokens(np.array([q["token"] for q in quotes]))
    for name in SCALARS:
        getattr(cols, name)[:] = [q[name] for q in quotes]
    for side in ("bid", "ask"):
        for part in ("price", "qty", "orders"):
            getattr(cols, f"{side}_{part}")[:] = [q[f"{side}_{part}"] for q in quotes]
    return cols


def _quote(token: int, base: float = 101.25) -> dict[str, Any]:
    return {
        "token": token, "last": base, "ltq": 75, "atp": base - 0.5, "volume": 123_450, "buy_qty": 9_000,
        "sell_qty": 8_000, "open": base - 2, "high": base + 3, "low": base - 4, "close": base - 1.5,
        "ltt": 1_786_938_899, "oi": 654_321, "oi_day_high": 700_000, "oi_day_low": 600_000,
        "timestamp": 1_786_938_900,
        "bid_price": [base - 0.05 * (k + 1) for k in range(DEPTH_LEVELS)],
        "ask_price": [base + 0.05 * (k + 1) for k in range(DEPTH_LEVELS)],
        "bid_qty": [75 * (k + 1) for k in range(DEPTH_LEVELS)], "ask_qty": [30 * (k + 2) for k in range(DEPTH_LEVELS)],
        "bid_orders": [k + 1 for k in range(DEPTH_LEVELS)], "ask_orders": [k + 2 for k in range(DEPTH_LEVELS)],
    }


def _client_time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch)  # noqa: DTZ006 - the client's own naive local-time conversion


def _divisor(token: int) -> float:
    return {3: 1e7, 6: 1e4}.get(token & 0xFF, 100.0)


def _parse(frame: bytes) -> list[dict[str, Any]]:
    return KiteTicker("k", "t")._parse_binary(frame)


def _frame(quotes: list[dict[str, Any]], mode: int) -> bytes:
    return encode_frame(_columns(quotes), {mode: np.arange(len(quotes))})


def _close(a: float, b: float, token: int) -> bool:
    return abs(a - b) <= 0.5 / _divisor(token) + 1e-9


def _assert_matches(tick: dict[str, Any], q: dict[str, Any]) -> None:
    token = q["token"]
    assert tick["instrument_token"] == token
    assert tick["tradable"] == ((token & 0xFF) != 9)
    assert _close(tick["last_price"], q["last"], token)
    if tick["mode"] == "ltp":
        return
    for name in ("open", "high", "low", "close"):
        assert _close(tick["ohlc"][name], q[name], token), name
    if tick["tradable"]:
        _assert_quote_fields(tick, q)
    elif tick["mode"] == "full":
        assert tick["exchange_timestamp"] == _client_time(q["timestamp"])


def _assert_quote_fields(tick: dict[str, Any], q: dict[str, Any]) -> None:
    token = q["token"]
    assert tick["last_traded_quantity"] == q["ltq"]
    assert _close(tick["average_traded_price"], q["atp"], token)
    assert (tick["volume_traded"], tick["total_buy_quantity"], tick["total_sell_quantity"]) == (
        q["volume"], q["buy_qty"], q["sell_qty"])
    if tick["mode"] != "full":
        return
    assert tick["last_trade_time"] == _client_time(q["ltt"])
    assert tick["exchange_timestamp"] == _client_time(q["timestamp"])
    assert (tick["oi"], tick["oi_day_high"], tick["oi_day_low"]) == (q["oi"], q["oi_day_high"], q["oi_day_low"])
    for side, key in (("buy", "bid"), ("sell", "ask")):
        for level, entry in enumerate(tick["depth"][side]):
            assert _close(entry["price"], q[f"{key}_price"][level], token)
            assert entry["quantity"] == q[f"{key}_qty"][level]
            assert entry["orders"] == q[f"{key}_orders"][level]


@pytest.mark.parametrize("token", [NFO_TOKEN, BFO_TOKEN, INDEX_TOKEN, CDS_TOKEN, BCD_TOKEN])
@pytest.mark.parametrize("mode", [MODE_LTP, MODE_QUOTE, MODE_FULL])
def test_every_segment_and_mode_round_trips_through_the_official_decoder(token: int, mode: int) -> None:
    q = _quote(token, base=83.4512345 if token in (CDS_TOKEN, BCD_TOKEN) else 24_876.55)
    (tick,) = _parse(_frame([q], mode))
    assert tick["mode"] == {MODE_LTP: "ltp", MODE_QUOTE: "quote", MODE_FULL: "full"}[mode]
    _assert_matches(tick, q)


@pytest.mark.parametrize(
    ("token", "mode", "length"),
    [(NFO_TOKEN, MODE_LTP, 8), (INDEX_TOKEN, MODE_LTP, 8), (INDEX_TOKEN, MODE_QUOTE, 28),
     (INDEX_TOKEN, MODE_FULL, 32), (NFO_TOKEN, MODE_QUOTE, 44), (BFO_TOKEN, MODE_FULL, 184)],
)
def test_packet_lengths(token: int, mode: int, length: int) -> None:
    frame = _frame([_quote(token)], mode)
    assert struct.unpack_from(">HH", frame) == (1, length)
    assert [len(p) for p in split_packets(frame)] == [length]


def test_quote_packet_offsets_are_the_spec_table() -> None:
    q = _quote(NFO_TOKEN)
    (packet,) = split_packets(_frame([q], MODE_FULL))
    fields = struct.unpack_from(">16I", packet)
    assert fields[0] == NFO_TOKEN
    assert fields[1:11] == (10125, 75, 10075, 123_450, 9_000, 8_000, 9925, 10425, 9725, 9975)
    assert fields[11:16] == (1_786_938_899, 654_321, 700_000, 600_000, 1_786_938_900)
    assert struct.unpack_from(">IIHH", packet, 64) == (75, 10120, 1, 0)  # first bid, zero padding
    assert struct.unpack_from(">IIHH", packet, 124) == (60, 10130, 2, 0)  # first ask at byte 124


def test_index_packet_orders_high_low_open_close() -> None:
    q = _quote(INDEX_TOKEN, base=24_876.55)
    (packet,) = split_packets(_frame([q], MODE_FULL))
    token, last, high, low, open_, close, change, stamp = struct.unpack(">IIIIIIiI", packet)
    assert (token, last, high, low, open_, close) == (INDEX_TOKEN, 2487655, 2487955, 2487255, 2487455, 2487505)
    assert change == 2487655 - 2487505
    assert stamp == q["timestamp"]


def test_one_frame_mixes_modes_segments_and_many_instruments() -> None:
    quotes = [_quote(t) for t in (NFO_TOKEN, BFO_TOKEN, INDEX_TOKEN, CDS_TOKEN)]
    cols = _columns(quotes)
    frame = encode_frame(cols, {MODE_FULL: np.array([0, 2]), MODE_LTP: np.array([1]), MODE_QUOTE: np.array([3])})
    ticks = {t["instrument_token"]: t for t in _parse(frame)}
    assert packet_count(frame) == 4
    assert {t: ticks[t]["mode"] for t in ticks} == {NFO_TOKEN: "full", INDEX_TOKEN: "full", BFO_TOKEN: "ltp",
                                                    CDS_TOKEN: "quote"}
    for q in quotes:
        _assert_matches(ticks[q["token"]], q)


def test_uniform_fast_decoder_agrees_with_the_official_one() -> None:
    quotes = [_quote(NFO_TOKEN + 256 * k, base=100 + k) for k in range(50)]
    frame = _frame(quotes, MODE_FULL)
    fast = decode_uniform(frame)
    assert fast is not None
    assert fast["token"].tolist() == [t["instrument_token"] for t in _parse(frame)]
    assert (fast["last"] / 100).tolist() == [t["last_price"] for t in _parse(frame)]
    mixed = encode_frame(_columns(quotes), {MODE_FULL: np.arange(2), MODE_LTP: np.arange(2, 4)})
    assert decode_uniform(mixed) is None


def test_heartbeat_and_garbled_frames() -> None:
    assert _parse(HEARTBEAT) == []
    frame = _frame([_quote(NFO_TOKEN), _quote(BFO_TOKEN)], MODE_FULL)
    garbled = garble_frame(frame)
    assert len(garbled) < len(frame)
    assert packet_count(garbled) == 2
    assert decode_uniform(garbled) is None


def test_an_oversized_frame_is_refused() -> None:
    cols = _columns([_quote(NFO_TOKEN)])
    with pytest.raises(ValueError, match="do not fit"):
        encode_frame(cols, {MODE_LTP: np.zeros(70_000, dtype=np.intp)})


_SEGMENTS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 9])
_QTY = st.integers(min_value=0, max_value=2**31)


@st.composite
def _random_quote(draw: st.DrawFn) -> dict[str, Any]:
    segment = draw(_SEGMENTS)
    token = draw(st.integers(min_value=1, max_value=2**24 - 1)) << 8 | segment
    cap = 400.0 if segment == 3 else 200_000.0  # uint32 paise: currencies use a 1e7 divisor
    price = st.floats(min_value=0.0, max_value=cap, allow_nan=False)
    q = {name: draw(price) for name in ("last", "atp", "open", "high", "low", "close")}
    q.update({name: draw(_QTY) for name in ("ltq", "volume", "buy_qty", "sell_qty", "oi", "oi_day_high",
                                            "oi_day_low")})
    q.update(token=token, ltt=draw(st.integers(10**9, 2 * 10**9)), timestamp=draw(st.integers(10**9, 2 * 10**9)))
    for side in ("bid", "ask"):
        q[f"{side}_price"] = draw(st.lists(price, min_size=DEPTH_LEVELS, max_size=DEPTH_LEVELS))
        q[f"{side}_qty"] = draw(st.lists(_QTY, min_size=DEPTH_LEVELS, max_size=DEPTH_LEVELS))
        q[f"{side}_orders"] = draw(st.lists(st.integers(0, 65535), min_size=DEPTH_LEVELS, max_size=DEPTH_LEVELS))
    return q


@settings(max_examples=60, deadline=None)
@given(quotes=st.lists(_random_quote(), min_size=1, max_size=6), mode=st.sampled_from([MODE_LTP, MODE_QUOTE,
                                                                                         MODE_FULL]))
def test_random_quotes_round_trip(quotes: list[dict[str, Any]], mode: int) -> None:
    ticks = _parse(_frame(quotes, mode))
    if mode != MODE_LTP:  # index packets (their own layout) come first within a mode
        quotes = sorted(quotes, key=lambda q: (q["token"] & 0xFF) != 9)
    assert len(ticks) == len(quotes)
    for tick, q in zip(ticks, quotes, strict=True):
        _assert_matches(tick, q)
