"""decode_frame against hand-built packets and, property-based, against kiteconnect's own parser.

Float fields must be exactly equal to kiteconnect's: the decoder does the same IEEE operations
(an exact uint32 -> float64 conversion, one division by the same divisor, then
``(last_price - close) * 100 / close``), so no tolerance is needed.
"""

import struct
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from tests.ticks.feeds.frames import (
    BCD,
    BFO,
    BSE,
    CDS,
    INDICES,
    MCX,
    NCO,
    NFO,
    NSE,
    frame,
    full_packet,
    index_packet,
    ltp_packet,
    quote_packet,
    token,
)
from ticks.feeds.protocol import TICK_DTYPE, FrameError, TickArray, decode_frame

INFY = token(1594, NSE)  # 408065
NIFTY = token(1001, INDICES)  # 256265
BANKNIFTY_CE = token(47164, NFO)  # 12073986
USDINR = token(1234, CDS)

ORACLE = KiteTicker("api_key", "access_token")

U32 = st.integers(0, 2**32 - 1)
U16 = st.integers(0, 2**16 - 1)
DEPTH_FIELDS = ("price", "quantity", "orders")


# --- comparison with kiteconnect -------------------------------------------------------------


def _epoch(value: datetime | None) -> int:
    # kiteconnect returns a naive local datetime, or None when its platform cannot represent the
    # timestamp; our 0 means "absent", which is what None says.
    return 0 if value is None else int(value.timestamp())


def _oracle_row(tick: dict[str, Any]) -> dict[str, Any]:
    """kiteconnect's tick flattened into TICK_DTYPE's names, with 0 for what the packet lacks."""
    flat = {key: value for key, value in tick.items() if key not in ("ohlc", "depth")}
    flat.update(tick.get("ohlc", {}))
    for side, prefix in (("buy", "bid"), ("sell", "ask")):
        levels = tick.get("depth", {}).get(side)
        if levels is not None:
            flat.update({f"{prefix}_{field}": [level[field] for level in levels] for field in DEPTH_FIELDS})
    for key in ("last_trade_time", "exchange_timestamp"):
        if key in flat:
            flat[key] = _epoch(flat[key])
    unknown = set(flat) - set(TICK_DTYPE.names)
    assert not unknown, f"kiteconnect fields the decoder does not have: {unknown}"
    return {name: flat.get(name, _zero(name)) for name in TICK_DTYPE.names}


def _zero(name: str) -> Any:
    field = TICK_DTYPE.fields[name][0]
    return np.zeros((), field).tolist()


def _our_row(tick: np.void) -> dict[str, Any]:
    return {name: tick[name].tolist() for name in TICK_DTYPE.names}


def assert_matches_oracle(payload: bytes, ticks: TickArray) -> None:
    expected = [_oracle_row(tick) for tick in ORACLE._parse_binary(payload)]
    assert [_our_row(tick) for tick in ticks] == expected


def decoded_one(packet: bytes) -> dict[str, Any]:
    payload = frame([packet])
    ticks = decode_frame(payload)
    assert_matches_oracle(payload, ticks)
    (tick,) = ticks
    return _our_row(tick)


# --- hand-built packets ----------------------------------------------------------------------


def test_tick_dtype_has_kiteconnects_names_flattened() -> None:
    scalars = {
        "instrument_token", "mode", "tradable", "last_price", "last_traded_quantity", "average_traded_price",
        "volume_traded", "total_buy_quantity", "total_sell_quantity", "open", "high", "low", "close", "change",
        "last_trade_time", "oi", "oi_day_high", "oi_day_low", "exchange_timestamp",
    }  # fmt: skip
    depth = {f"{side}_{field}" for side in ("bid", "ask") for field in DEPTH_FIELDS}
    assert set(TICK_DTYPE.names) == scalars | depth
    assert all(TICK_DTYPE.fields[name][0].shape == (5,) for name in depth)
    assert all(TICK_DTYPE.fields[name][0].shape == () for name in scalars)


def test_ltp_packet() -> None:
    tick = decoded_one(ltp_packet(INFY, last_price=157315))
    expected = _oracle_row({})
    expected.update(instrument_token=408065, mode="ltp", tradable=True, last_price=1573.15)
    assert tick == expected


@pytest.mark.parametrize(
    ("segment", "raw", "rupees"),
    [
        (NSE, 157315, 1573.15),
        (NFO, 250, 2.5),
        (CDS, 735_000_000, 73.5),
        (BSE, 10, 0.1),
        (BFO, 5, 0.05),
        (BCD, 735_000, 73.5),
        (MCX, 6_012_300, 60123.0),
        (INDICES, 2_345_605, 23456.05),
        (NCO, 12_345, 1.2345),
        (200, 100, 1.0),  # a segment kiteconnect does not know: the default divisor
    ],
)
def test_price_divisor_follows_the_segment(segment: int, raw: int, rupees: float) -> None:
    tick = decoded_one(ltp_packet(token(77, segment), last_price=raw))
    assert tick["last_price"] == rupees
    assert tick["tradable"] is (segment != INDICES)


def test_quote_packet_fields_and_percent_change() -> None:
    packet = quote_packet(
        BANKNIFTY_CE,
        last_price=11000,
        last_traded_quantity=40,
        average_traded_price=10950,
        volume_traded=123_456,
        total_buy_quantity=7000,
        total_sell_quantity=8000,
        open=10500,
        high=11200,
        low=10400,
        close=10000,
    )
    tick = decoded_one(packet)
    assert {key: tick[key] for key in ("mode", "tradable", "last_price", "average_traded_price")} == {
        "mode": "quote",
        "tradable": True,
        "last_price": 110.0,
        "average_traded_price": 109.5,
    }
    assert (tick["last_traded_quantity"], tick["volume_traded"]) == (40, 123_456)
    assert (tick["total_buy_quantity"], tick["total_sell_quantity"]) == (7000, 8000)
    assert (tick["open"], tick["high"], tick["low"], tick["close"]) == (105.0, 112.0, 104.0, 100.0)
    assert tick["change"] == 10.0  # percent, not rupees
    assert tick["last_trade_time"] == tick["exchange_timestamp"] == 0


def test_change_is_zero_without_a_close() -> None:
    assert decoded_one(quote_packet(INFY, last_price=157315, close=0))["change"] == 0.0


def test_full_packet_depth_order_and_oi() -> None:
    bids = [(100 + level, 15730 - level * 5, level + 1) for level in range(5)]
    asks = [(200 + level, 15735 + level * 5, 10 + level) for level in range(5)]
    packet = full_packet(
        INFY,
        last_price=157315,
        close=156000,
        last_trade_time=1_625_461_887,
        oi=1000,
        oi_day_high=1500,
        oi_day_low=900,
        exchange_timestamp=1_625_461_888,
        bids=bids,
        asks=asks,
        depth_padding=b"\xff\xff",  # not part of any field
    )
    tick = decoded_one(packet)
    assert tick["mode"] == "full"
    assert tick["bid_quantity"] == [100, 101, 102, 103, 104]
    assert tick["bid_price"] == [157.3, 157.25, 157.2, 157.15, 157.1]
    assert tick["bid_orders"] == [1, 2, 3, 4, 5]
    assert tick["ask_quantity"] == [200, 201, 202, 203, 204]
    assert tick["ask_price"] == [157.35, 157.4, 157.45, 157.5, 157.55]
    assert tick["ask_orders"] == [10, 11, 12, 13, 14]
    assert (tick["oi"], tick["oi_day_high"], tick["oi_day_low"]) == (1000, 1500, 900)
    assert (tick["last_trade_time"], tick["exchange_timestamp"]) == (1_625_461_887, 1_625_461_888)
    assert tick["change"] == (1573.15 - 1560.0) * 100 / 1560.0


def test_cds_full_packet_divides_depth_by_1e7() -> None:
    tick = decoded_one(full_packet(USDINR, last_price=832_512_500, bids=[(1, 832_500_000, 1)]))
    assert (tick["last_price"], tick["bid_price"][0]) == (83.25125, 83.25)


def test_index_quote_packet_orders_ohlc_high_low_open_close() -> None:
    packet = index_packet(
        NIFTY, last_price=2_345_605, high=2_350_000, low=2_330_000, open=2_340_000, close=2_300_000
    )
    tick = decoded_one(packet)
    assert (tick["mode"], tick["tradable"]) == ("quote", False)
    assert (tick["open"], tick["high"], tick["low"], tick["close"]) == (23400.0, 23500.0, 23300.0, 23000.0)
    assert tick["change"] == (23456.05 - 23000.0) * 100 / 23000.0
    assert tick["exchange_timestamp"] == 0


def test_index_full_packet_has_an_exchange_timestamp() -> None:
    tick = decoded_one(
        index_packet(NIFTY, last_price=1, close=2, price_change=-1, exchange_timestamp=1_700_000_000)
    )
    assert (tick["mode"], tick["exchange_timestamp"]) == ("full", 1_700_000_000)
    assert tick["change"] == -50.0


def test_epoch_zero_is_zero_like_an_absent_timestamp() -> None:
    tick = decoded_one(full_packet(INFY, last_trade_time=0, exchange_timestamp=0))
    assert (tick["last_trade_time"], tick["exchange_timestamp"]) == (0, 0)


def test_packet_kind_comes_from_length_alone_like_kiteconnect() -> None:
    # A 184-byte packet for an index and a 28-byte packet for an option: kiteconnect decodes both
    # by length (full layout, index layout) and takes tradable from the segment; so do we.
    index_full = decoded_one(full_packet(NIFTY, last_price=100, oi=7))
    assert (index_full["mode"], index_full["tradable"], index_full["oi"]) == ("full", False, 7)
    option_index_layout = decoded_one(index_packet(BANKNIFTY_CE, last_price=100, high=300, open=200))
    assert (option_index_layout["mode"], option_index_layout["tradable"]) == ("quote", True)
    assert (option_index_layout["high"], option_index_layout["open"]) == (3.0, 2.0)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x01", b"\x00\x00"])
def test_heartbeats_and_empty_frames_decode_to_no_ticks(payload: bytes) -> None:
    ticks = decode_frame(payload)
    assert ticks.dtype == TICK_DTYPE
    assert ticks.shape == (0,)


def test_packets_of_unknown_length_are_skipped_like_kiteconnect() -> None:
    payload = frame([ltp_packet(INFY, last_price=1), b"\x01" * 10, b"\x02" * 4, quote_packet(NIFTY, close=5)])
    ticks = decode_frame(payload)
    assert_matches_oracle(payload, ticks)
    assert ticks["mode"].tolist() == ["ltp", "quote"]


def test_packets_too_short_for_a_token_are_skipped_where_kiteconnect_crashes() -> None:
    payload = frame([ltp_packet(INFY, last_price=1), b"", b"\x01\x02\x03"])
    with pytest.raises(struct.error):
        ORACLE._parse_binary(payload)
    assert decode_frame(payload)["instrument_token"].tolist() == [INFY]


def test_frame_of_only_unknown_lengths_is_empty() -> None:
    payload = frame([b"\x00" * 12] * 3)
    assert decode_frame(payload).shape == (0,)
    assert ORACLE._parse_binary(payload) == []


def test_mixed_lengths_that_tile_like_equal_lengths_are_walked_one_by_one() -> None:
    # 4 packets of 32, 8, 44, 44 bytes fill exactly 4 * (2 + 32) bytes, as four 32-byte ones would.
    packets = [
        index_packet(NIFTY, close=1, exchange_timestamp=5),
        ltp_packet(INFY),
        quote_packet(INFY),
        quote_packet(INFY),
    ]
    payload = frame(packets)
    assert len(payload) == 2 + 4 * (2 + 32)
    ticks = decode_frame(payload)
    assert_matches_oracle(payload, ticks)
    assert ticks["mode"].tolist() == ["full", "ltp", "quote", "quote"]


def test_a_large_uniform_frame_matches_kiteconnect() -> None:
    packets = [
        full_packet(token(n, NFO), last_price=n * 7, close=n * 5, oi=n, bids=[(n, n * 3, n % 65536)] * 5)
        for n in range(1, 3001)
    ]
    payload = frame(packets)
    ticks = decode_frame(payload)
    assert len(ticks) == 3000
    assert_matches_oracle(payload, ticks)


# --- inconsistent frames ---------------------------------------------------------------------

LTP = ltp_packet(INFY, last_price=100)


@pytest.mark.parametrize(
    ("payload", "offset"),
    [
        (frame([LTP], count=2), 12),  # count says 2, the frame ends after 1
        (frame([LTP], count=2) + b"\x00", 12),  # half a length prefix
        (frame([LTP])[:-3], 2),  # the packet's 8 bytes run past the end
        (frame([LTP, LTP])[:-1], 12),  # the second packet runs past the end
        (frame([LTP]) + b"\x00", 12),  # trailing byte
        (frame([], count=0) + b"\x00\x08", 2),
        (b"\x00\x01\x00", 2),
        (b"\x00\x01", 2),
        (frame([LTP] * 3, count=65535), 32),
    ],
)
def test_inconsistent_frames_raise_frame_error_with_the_offset(payload: bytes, offset: int) -> None:
    with pytest.raises(FrameError) as raised:
        decode_frame(payload)
    assert raised.value.offset == offset
    assert f"at byte {offset}" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_cut_off_full_packet_is_an_error_not_a_quote() -> None:
    payload = frame([full_packet(INFY, last_price=100)])[: 4 + 44]
    (misread,) = ORACLE._parse_binary(payload)
    assert misread["mode"] == "quote"  # what kiteconnect makes of it
    with pytest.raises(FrameError) as raised:
        decode_frame(payload)
    assert raised.value.offset == 2


# --- properties ------------------------------------------------------------------------------


@st.composite
def tokens(draw: st.DrawFn) -> int:
    segment = draw(
        st.one_of(st.sampled_from([NSE, NFO, CDS, BFO, BCD, MCX, INDICES, NCO]), st.integers(0, 255))
    )
    return token(draw(st.integers(0, 2**24 - 1)), segment)


def _depth_side() -> st.SearchStrategy[list[tuple[int, int, int]]]:
    return st.lists(st.tuples(U32, U32, U16), min_size=5, max_size=5)


def packets(kind: str) -> st.SearchStrategy[bytes]:
    """Random packets of one kind, any token and any uint32 in every field (close is often 0)."""
    prices = {name: st.one_of(st.just(0), U32) for name in ("last_price", "open", "high", "low", "close")}
    quote = {
        **prices,
        "last_traded_quantity": U32,
        "average_traded_price": U32,
        "volume_traded": U32,
        "total_buy_quantity": U32,
        "total_sell_quantity": U32,
    }
    full = {
        **quote,
        "last_trade_time": U32,
        "oi": U32,
        "oi_day_high": U32,
        "oi_day_low": U32,
        "exchange_timestamp": U32,
        "bids": _depth_side(),
        "asks": _depth_side(),
        "depth_padding": st.binary(min_size=2, max_size=2),
    }
    index = {**prices, "price_change": st.integers(-(2**31), 2**31 - 1)}
    builders = {
        "ltp": st.builds(ltp_packet, tokens(), U32),
        "index_quote": st.builds(index_packet, tokens(), **index),
        "index_full": st.builds(index_packet, tokens(), **index, exchange_timestamp=U32),
        "quote": st.builds(quote_packet, tokens(), **quote),
        "full": st.builds(full_packet, tokens(), **full),
        "unknown": st.binary(min_size=4, max_size=200).filter(
            lambda data: len(data) not in (8, 28, 32, 44, 184)
        ),
    }
    return builders[kind]


KINDS = ("ltp", "index_quote", "index_full", "quote", "full", "unknown")
MIXED_PACKETS = st.lists(st.sampled_from(KINDS).flatmap(packets), max_size=12)
UNIFORM_PACKETS = st.sampled_from(KINDS[:-1]).flatmap(
    lambda kind: st.lists(packets(kind), min_size=1, max_size=12)
)
VALID_FRAMES = st.one_of(MIXED_PACKETS, UNIFORM_PACKETS).map(frame)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(payload=VALID_FRAMES)
def test_every_field_of_a_valid_frame_equals_kiteconnects(payload: bytes) -> None:
    assert_matches_oracle(payload, decode_frame(payload))


def _split(payload: bytes) -> list[bytes] | None:
    """The spec of a consistent frame, walked the obvious way: ``count`` packets exactly filling the
    bytes. The packets, or None when the frame is inconsistent."""
    if len(payload) < 2:
        return []
    (count,) = struct.unpack_from(">H", payload)
    packets = []
    position = 2
    for _ in range(count):
        if position + 2 > len(payload):
            return None
        (length,) = struct.unpack_from(">H", payload, position)
        packets.append(payload[position + 2 : position + 2 + length])
        position += 2 + length
    return packets if position == len(payload) else None


@st.composite
def damaged_frames(draw: st.DrawFn) -> bytes:
    payload = draw(VALID_FRAMES)
    damage = draw(st.sampled_from(["truncate", "append", "overwrite", "delete", "insert", "recount"]))
    at = draw(st.integers(0, len(payload)))
    if damage == "truncate":
        return payload[:at]
    if damage == "append":
        return payload + draw(st.binary(min_size=1, max_size=8))
    if damage == "overwrite":
        at = min(at, len(payload) - 1)
        return payload[:at] + bytes([draw(st.integers(0, 255))]) + payload[at + 1 :]
    if damage == "delete":
        return payload[:at] + payload[at + draw(st.integers(1, 8)) :]
    if damage == "insert":
        return payload[:at] + draw(st.binary(min_size=1, max_size=8)) + payload[at:]
    return struct.pack(">H", draw(U16)) + payload[2:]


@PROPERTY_SETTINGS
@given(payload=damaged_frames())
def test_a_damaged_frame_raises_frame_error_or_still_equals_kiteconnect(payload: bytes) -> None:
    packets = _split(payload)
    try:
        ticks = decode_frame(payload)
    except FrameError as error:
        assert packets is None
        assert 2 <= error.offset <= len(payload)
        return
    assert packets is not None
    # kiteconnect reads a token before it looks at the length, so it crashes on packets under 4
    # bytes; the decoder skips those like any other unknown length.
    assert_matches_oracle(frame([packet for packet in packets if len(packet) >= 4]), ticks)
