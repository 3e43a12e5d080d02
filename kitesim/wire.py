"""Kite ticker binary frames (ref/kite-connect-v3.md §1.5), encoded in bulk with numpy.

A frame is ``uint16 count`` then, per packet, ``uint16 length`` and the packet, all big-endian.
The client picks the parser by length alone: 8 (ltp), 28/32 (index quote/full), 44 (quote),
184 (full). Prices are integers: rupees times the segment's divisor (``token & 0xff``).
"""

import struct
from dataclasses import dataclass, fields

import numpy as np

MODE_LTP, MODE_QUOTE, MODE_FULL = 1, 2, 3
MODE_NAMES = {"ltp": MODE_LTP, "quote": MODE_QUOTE, "full": MODE_FULL}
DEPTH_LEVELS = 5
HEARTBEAT = b"\x00"
MAX_PACKETS_PER_FRAME = 0xFFFF
# Segment code -> price divisor, as kiteconnect 5.2.2 decodes (cds 1e7, bcd/nco 1e4, else 100).
DIVISORS = {3: 10_000_000.0, 6: 10_000.0, 12: 10_000.0}
INDEX_SEGMENT = 9

_U2, _U4, _I4 = ">u2", ">u4", ">i4"
_DEPTH = np.dtype([("quantity", _U4), ("price", _U4), ("orders", _U2), ("pad", _U2)])
_HEAD = [("length", _U2), ("token", _U4), ("last", _U4)]
_OHLC_INDEX = [("high", _U4), ("low", _U4), ("open", _U4), ("close", _U4), ("change", _I4)]
_QUOTE_BODY = [
    ("ltq", _U4), ("atp", _U4), ("volume", _U4), ("buy_qty", _U4), ("sell_qty", _U4),
    ("open", _U4), ("high", _U4), ("low", _U4), ("close", _U4),
]
_FULL_TAIL = [
    ("ltt", _U4), ("oi", _U4), ("oi_day_high", _U4), ("oi_day_low", _U4), ("timestamp", _U4),
    ("depth", _DEPTH, (2 * DEPTH_LEVELS,)),
]
# Each record is the uint16 length prefix plus the packet itself.
LTP_RECORD = np.dtype(_HEAD)
INDEX_QUOTE_RECORD = np.dtype(_HEAD + _OHLC_INDEX)
INDEX_FULL_RECORD = np.dtype([*_HEAD, *_OHLC_INDEX, ("timestamp", _U4)])
QUOTE_RECORD = np.dtype(_HEAD + _QUOTE_BODY)
FULL_RECORD = np.dtype(_HEAD + _QUOTE_BODY + _FULL_TAIL)
RECORDS_BY_LENGTH = {r.itemsize - 2: r for r in (LTP_RECORD, INDEX_QUOTE_RECORD, INDEX_FULL_RECORD,
                                                 QUOTE_RECORD, FULL_RECORD)}


def divisor_for(token: int) -> float:
    return DIVISORS.get(token & 0xFF, 100.0)


@dataclass(slots=True)
class TickColumns:
    """The quote of every instrument as columns (rupees, quantities, epoch seconds)."""

    token: np.ndarray
    divisor: np.ndarray
    is_index: np.ndarray
    last: np.ndarray
    ltq: np.ndarray
    atp: np.ndarray
    volume: np.ndarray
    buy_qty: np.ndarray
    sell_qty: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    ltt: np.ndarray
    oi: np.ndarray
    oi_day_high: np.ndarray
    oi_day_low: np.ndarray
    timestamp: np.ndarray
    bid_price: np.ndarray
    bid_qty: np.ndarray
    bid_orders: np.ndarray
    ask_price: np.ndarray
    ask_qty: np.ndarray
    ask_orders: np.ndarray

    @classmethod
    def for_tokens(cls, tokens: np.ndarray) -> "TickColumns":
        tokens = np.asarray(tokens, dtype=np.uint32)
        n = tokens.size
        divisor = np.array([divisor_for(int(t)) for t in tokens], dtype=float)
        is_index = (tokens & 0xFF) == INDEX_SEGMENT
        values = {f.name: np.zeros(n) for f in fields(cls)}
        values.update(token=tokens, divisor=divisor, is_index=is_index)
        for name in ("bid_price", "bid_qty", "bid_orders", "ask_price", "ask_qty", "ask_orders"):
            values[name] = np.zeros((n, DEPTH_LEVELS))
        return cls(**values)

    def take(self, rows: np.ndarray | slice) -> "TickColumns":
        """A copy of ``rows`` only (a slice gives a copy too)."""
        return TickColumns(**{f.name: getattr(self, f.name)[rows].copy() for f in fields(self)})


def _paise(values: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    return np.rint(np.maximum(values, 0.0) * divisor).astype(np.uint32)


def _head(out: np.ndarray, cols: TickColumns, rows: np.ndarray, div: np.ndarray) -> None:
    out["length"] = out.dtype.itemsize - 2
    out["token"] = cols.token[rows]
    out["last"] = _paise(cols.last[rows], div)


def _encode_ltp(cols: TickColumns, rows: np.ndarray) -> np.ndarray:
    out = np.empty(rows.size, LTP_RECORD)
    _head(out, cols, rows, cols.divisor[rows])
    return out


def _encode_index(cols: TickColumns, rows: np.ndarray, full: bool) -> np.ndarray:
    div = cols.divisor[rows]
    out = np.empty(rows.size, INDEX_FULL_RECORD if full else INDEX_QUOTE_RECORD)
    _head(out, cols, rows, div)
    for name in ("high", "low", "open", "close"):
        out[name] = _paise(getattr(cols, name)[rows], div)
    out["change"] = np.rint((cols.last[rows] - cols.close[rows]) * div).astype(np.int32)
    if full:
        out["timestamp"] = cols.timestamp[rows].astype(np.uint32)
    return out


def _encode_depth(out: np.ndarray, cols: TickColumns, rows: np.ndarray, div: np.ndarray) -> None:
    depth = out["depth"]
    prices = np.concatenate([cols.bid_price[rows], cols.ask_price[rows]], axis=1)
    depth["price"] = _paise(prices, div[:, None])
    depth["quantity"] = np.concatenate([cols.bid_qty[rows], cols.ask_qty[rows]], axis=1)
    depth["orders"] = np.concatenate([cols.bid_orders[rows], cols.ask_orders[rows]], axis=1)
    depth["pad"] = 0


def _encode_quote(cols: TickColumns, rows: np.ndarray, full: bool) -> np.ndarray:
    div = cols.divisor[rows]
    out = np.empty(rows.size, FULL_RECORD if full else QUOTE_RECORD)
    _head(out, cols, rows, div)
    for name in ("atp", "open", "high", "low", "close"):
        out[name] = _paise(getattr(cols, name)[rows], div)
    for name in ("ltq", "volume", "buy_qty", "sell_qty"):
        out[name] = getattr(cols, name)[rows]
    if full:
        for name in ("ltt", "oi", "oi_day_high", "oi_day_low", "timestamp"):
            out[name] = getattr(cols, name)[rows]
        _encode_depth(out, cols, rows, div)
    return out


def encode_packets(cols: TickColumns, rows: np.ndarray, mode: int) -> bytes:
    """Length-prefixed packets for ``rows`` in ``mode``; indices get the 28/32-byte layouts."""
    rows = np.asarray(rows, dtype=np.intp)
    if mode == MODE_LTP:
        return _encode_ltp(cols, rows).tobytes()
    index_rows, trade_rows = rows[cols.is_index[rows]], rows[~cols.is_index[rows]]
    full = mode == MODE_FULL
    return _encode_index(cols, index_rows, full).tobytes() + _encode_quote(cols, trade_rows, full).tobytes()


def encode_frame(cols: TickColumns, rows_by_mode: dict[int, np.ndarray]) -> bytes:
    """One frame carrying every row in every mode given; raises ValueError past 65535 packets."""
    count = sum(int(np.size(rows)) for rows in rows_by_mode.values())
    if count > MAX_PACKETS_PER_FRAME:
        raise ValueError(f"{count} packets do not fit one frame")
    blocks = [encode_packets(cols, rows, mode) for mode, rows in rows_by_mode.items() if np.size(rows)]
    return struct.pack(">H", count) + b"".join(blocks)


def garble_frame(frame: bytes) -> bytes:
    """A malformed frame for fault injection: the header promises more than the truncated body holds."""
    return frame[: max(3, len(frame) // 2 - 1)]


def split_packets(frame: bytes) -> list[bytes]:
    """Reference splitter (the slow, obvious way); heartbeats give []."""
    if len(frame) < 2:
        return []
    (count,), offset, packets = struct.unpack_from(">H", frame), 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">H", frame, offset)
        packets.append(frame[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return packets


def packet_count(frame: bytes) -> int:
    return struct.unpack_from(">H", frame)[0] if len(frame) >= 2 else 0


def decode_uniform(frame: bytes) -> np.ndarray | None:
    """Fast path: a structured array when every packet has the first packet's length, else None."""
    count = packet_count(frame)
    if count == 0:
        return None
    length = struct.unpack_from(">H", frame, 2)[0]
    record = RECORDS_BY_LENGTH.get(length)
    if record is None or len(frame) != 2 + count * record.itemsize:
        return None
    decoded = np.frombuffer(frame, dtype=record, count=count, offset=2)
    return decoded if bool(np.all(decoded["length"] == length)) else None
