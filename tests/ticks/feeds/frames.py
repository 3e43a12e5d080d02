"""Hand-built Kite binary tick packets and frames (ref/kite-connect-v3.md §1.5), one struct.pack each.

Independent of kitesim on purpose: the decoder is checked against this plain encoder and kiteconnect.
Every value is the raw wire integer: prices are rupees times the segment's divisor, times are epoch s.
"""

import struct
from collections.abc import Sequence

DepthLevel = tuple[int, int, int]  # (quantity, price, orders)

NSE, NFO, CDS, BSE, BFO, BCD, MCX, MCXSX, INDICES, NCO = 1, 2, 3, 4, 5, 6, 7, 8, 9, 12


def token(exchange_token: int, segment: int) -> int:
    """Kite's instrument_token: the exchange token shifted past the segment byte."""
    return exchange_token << 8 | segment


def ltp_packet(instrument_token: int, last_price: int = 0) -> bytes:
    return struct.pack(">II", instrument_token, last_price)


def index_packet(
    instrument_token: int,
    *,
    last_price: int = 0,
    high: int = 0,
    low: int = 0,
    open: int = 0,
    close: int = 0,
    price_change: int = 0,
    exchange_timestamp: int | None = None,
) -> bytes:
    """28 bytes (quote), or 32 (full) when ``exchange_timestamp`` is given. OHLC go high, low, open, close."""
    packet = struct.pack(">6Ii", instrument_token, last_price, high, low, open, close, price_change)
    if exchange_timestamp is None:
        return packet
    return packet + struct.pack(">I", exchange_timestamp)


def quote_packet(
    instrument_token: int,
    *,
    last_price: int = 0,
    last_traded_quantity: int = 0,
    average_traded_price: int = 0,
    volume_traded: int = 0,
    total_buy_quantity: int = 0,
    total_sell_quantity: int = 0,
    open: int = 0,
    high: int = 0,
    low: int = 0,
    close: int = 0,
) -> bytes:
    """44 bytes."""
    return struct.pack(
        ">11I",
        instrument_token,
        last_price,
        last_traded_quantity,
        average_traded_price,
        volume_traded,
        total_buy_quantity,
        total_sell_quantity,
        open,
        high,
        low,
        close,
    )


def full_packet(
    instrument_token: int,
    *,
    last_trade_time: int = 0,
    oi: int = 0,
    oi_day_high: int = 0,
    oi_day_low: int = 0,
    exchange_timestamp: int = 0,
    bids: Sequence[DepthLevel] = (),
    asks: Sequence[DepthLevel] = (),
    depth_padding: bytes = b"\x00\x00",
    **quote_fields: int,
) -> bytes:
    """184 bytes: a quote packet, five more uint32s, then 5 bid and 5 ask levels (missing ones are 0)."""
    tail = struct.pack(">5I", last_trade_time, oi, oi_day_high, oi_day_low, exchange_timestamp)
    depth = b"".join(_depth_side(side, depth_padding) for side in (bids, asks))
    return quote_packet(instrument_token, **quote_fields) + tail + depth


def _depth_side(levels: Sequence[DepthLevel], padding: bytes) -> bytes:
    if len(levels) > 5:
        raise ValueError(f"a depth side has 5 levels, got {len(levels)}")
    padded = [*levels, *[(0, 0, 0)] * (5 - len(levels))]
    return b"".join(
        struct.pack(">IIH", quantity, price, orders) + padding for quantity, price, orders in padded
    )


def frame(packets: Sequence[bytes], count: int | None = None) -> bytes:
    """A binary message: packet count, then each packet behind its uint16 length. ``count`` overrides
    the header, for inconsistent frames."""
    header = struct.pack(">H", len(packets) if count is None else count)
    return header + b"".join(struct.pack(">H", len(packet)) + packet for packet in packets)
