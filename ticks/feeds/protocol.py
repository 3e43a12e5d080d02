"""Vectorized decoder for Kite Connect v3 WebSocket binary tick frames (pure: no Django, no I/O).

A frame is ``uint16 count`` followed by ``count`` packets, each ``uint16 length`` + ``length`` bytes,
all big-endian (ref/kite-connect-v3.md §1.5). ``decode_frame`` returns one ``TICK_DTYPE`` row per
packet, field for field what ``kiteconnect.KiteTicker._parse_binary`` (5.2.2) produces, flattened:
``ohlc`` becomes ``open``/``high``/``low``/``close``, ``depth`` becomes ``bid_*``/``ask_*`` of shape
(5,), datetimes stay epoch seconds, and a field the packet kind does not carry is 0.

Choices, each matching the oracle so its output and ours agree on every frame it accepts:

* The packet kind comes from the packet length alone, as in kiteconnect: 8 ltp, 28/32 index
  quote/full, 44 quote, 184 full. A 28/32-byte packet with a non-index token is decoded with the
  index layout and ``tradable=True``; a 184-byte packet with an index token is decoded as a full
  packet with ``tradable=False``.
* Packets of any other length are skipped, as kiteconnect skips them: they are well framed, so
  skipping loses nothing we could decode, and a future packet kind does not take the feed down.
* Structural damage is never guessed around: a count promising more packets than the bytes hold, a
  length running past the end, or bytes after the last packet raise ``FrameError`` with the byte
  offset of the offending length prefix (or of the first trailing byte). kiteconnect silently
  returns short packets there, which can turn a cut-off full packet into a bogus quote.
* Frames shorter than 2 bytes are heartbeats and decode to an empty array.

Speed: all packets of one length are converted together. ``TICK_DTYPE`` keeps its int64 fields in
one run and its float64 fields in another, so each packet kind fills them with a handful of 2-D
numpy operations instead of one per field.
"""

import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

SEGMENT_INDICES: Final = 9
DEPTH_LEVELS: Final = 5

_INT_FIELDS: Final = [
    ("instrument_token", np.int64),
    ("last_traded_quantity", np.int64),
    ("volume_traded", np.int64),
    ("total_buy_quantity", np.int64),
    ("total_sell_quantity", np.int64),
    ("last_trade_time", np.int64),
    ("oi", np.int64),
    ("oi_day_high", np.int64),
    ("oi_day_low", np.int64),
    ("exchange_timestamp", np.int64),
    ("bid_quantity", np.int64, (DEPTH_LEVELS,)),
    ("ask_quantity", np.int64, (DEPTH_LEVELS,)),
    ("bid_orders", np.int64, (DEPTH_LEVELS,)),
    ("ask_orders", np.int64, (DEPTH_LEVELS,)),
]
_FLOAT_FIELDS: Final = [
    ("last_price", np.float64),
    ("average_traded_price", np.float64),
    ("open", np.float64),
    ("high", np.float64),
    ("low", np.float64),
    ("close", np.float64),
    ("bid_price", np.float64, (DEPTH_LEVELS,)),
    ("ask_price", np.float64, (DEPTH_LEVELS,)),
    ("change", np.float64),
]
TICK_DTYPE: Final = np.dtype([*_INT_FIELDS, *_FLOAT_FIELDS, ("mode", "U5"), ("tradable", np.bool_)], align=True)
"""One decoded packet. Integers are int64 (the wire has uint32) so differences such as volume deltas
cannot wrap; prices are rupees; timestamps are epoch seconds, 0 when the packet kind has none.
``mode`` is kiteconnect's string: "ltp", "quote" or "full"."""

TickArray = npt.NDArray[np.void]
PacketBytes = npt.NDArray[np.uint8]
Index = slice | npt.NDArray[np.intp]


class FrameError(ValueError):
    """A binary frame whose length prefixes do not add up; ``offset`` is the byte where it breaks."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset


_U16: Final = struct.Struct(">H")

# Paise for most segments; CDS prices carry 7 decimals, BCD and NCO 4 (kiteconnect 5.2.2).
_DIVISOR_BY_SEGMENT: Final = np.full(256, 100.0)
_DIVISOR_BY_SEGMENT[3] = 10_000_000.0  # cds
_DIVISOR_BY_SEGMENT[[6, 12]] = 10_000.0  # bcd, nco

# Output field -> byte offset(s) in the packet. Every field is a big-endian uint32 except the depth
# order counts, which are uint16 (each depth entry is quantity u4, price u4, orders u2, 2 padding).
_SHORT_FIELDS: Final = frozenset({"bid_orders", "ask_orders"})
Layout = dict[str, int | range]
_LTP_LAYOUT: Final[Layout] = {"instrument_token": 0, "last_price": 4}
# Index packets order their OHLC as high, low, open, close, unlike quote packets. Bytes 24-28 hold an
# absolute price change that kiteconnect ignores; it computes a percent change itself.
_INDEX_QUOTE_LAYOUT: Final[Layout] = {**_LTP_LAYOUT, "high": 8, "low": 12, "open": 16, "close": 20}
_QUOTE_LAYOUT: Final[Layout] = {
    **_LTP_LAYOUT,
    "last_traded_quantity": 8,
    "average_traded_price": 12,
    "volume_traded": 16,
    "total_buy_quantity": 20,
    "total_sell_quantity": 24,
    "open": 28,
    "high": 32,
    "low": 36,
    "close": 40,
}
_FULL_LAYOUT: Final[Layout] = {
    **_QUOTE_LAYOUT,
    "last_trade_time": 44,
    "oi": 48,
    "oi_day_high": 52,
    "oi_day_low": 56,
    "exchange_timestamp": 60,
    "bid_quantity": range(64, 124, 12),
    "bid_price": range(68, 124, 12),
    "bid_orders": range(72, 124, 12),
    "ask_quantity": range(124, 184, 12),
    "ask_price": range(128, 184, 12),
    "ask_orders": range(132, 184, 12),
}


@dataclass(frozen=True)
class _Copy:
    """Move packet words ``source`` (in units of the word size) to block slots ``target``."""

    source: Index
    target: Index


@dataclass(frozen=True)
class _PacketKind:
    mode: str
    length: int
    prices: _Copy  # uint32 words -> float block, divided by the segment's divisor
    integers: _Copy  # uint32 words -> int block
    shorts: _Copy  # uint16 words -> int block
    has_close: bool


def _as_index(positions: list[int]) -> Index:
    """A slice when the positions are consecutive, so numpy takes a view instead of a copy."""
    if positions and positions == list(range(positions[0], positions[0] + len(positions))):
        return slice(positions[0], positions[0] + len(positions))
    return np.array(positions, dtype=np.intp)


def _block_slot(name: str, first_field: str) -> int:
    return (TICK_DTYPE.fields[name][1] - TICK_DTYPE.fields[first_field][1]) // 8


def _compile(mode: str, length: int, layout: Layout) -> _PacketKind:
    float_names = {field[0] for field in _FLOAT_FIELDS}
    moves: dict[str, tuple[list[int], list[int]]] = {"prices": ([], []), "integers": ([], []), "shorts": ([], [])}
    for name, offsets in layout.items():
        for element, offset in enumerate([offsets] if isinstance(offsets, int) else offsets):
            if name in float_names:
                group, word, slot = "prices", offset // 4, _block_slot(name, _FLOAT_FIELDS[0][0])
            elif name in _SHORT_FIELDS:
                group, word, slot = "shorts", offset // 2, _block_slot(name, _INT_FIELDS[0][0])
            else:
                group, word, slot = "integers", offset // 4, _block_slot(name, _INT_FIELDS[0][0])
            moves[group][0].append(word)
            moves[group][1].append(slot + element)
    copies = {group: _Copy(_as_index(words), _as_index(slots)) for group, (words, slots) in moves.items()}
    return _PacketKind(mode=mode, length=length, **copies, has_close="close" in layout)


_KINDS: Final = {
    kind.length: kind
    for kind in (
        _compile("ltp", 8, _LTP_LAYOUT),
        _compile("quote", 28, _INDEX_QUOTE_LAYOUT),
        _compile("full", 32, {**_INDEX_QUOTE_LAYOUT, "exchange_timestamp": 28}),
        _compile("quote", 44, _QUOTE_LAYOUT),
        _compile("full", 184, _FULL_LAYOUT),
    )
}
_KNOWN_LENGTHS: Final = np.array(sorted(_KINDS), dtype=np.int64)
_LAST_PRICE_SLOT: Final = _block_slot("last_price", _FLOAT_FIELDS[0][0])
_CLOSE_SLOT: Final = _block_slot("close", _FLOAT_FIELDS[0][0])
_CHANGE_SLOT: Final = _block_slot("change", _FLOAT_FIELDS[0][0])


def decode_frame(payload: bytes) -> TickArray:
    """Decode one binary WebSocket message into a ``TICK_DTYPE`` array, one row per packet."""
    if len(payload) < 2:
        return np.empty(0, TICK_DTYPE)
    count = _U16.unpack_from(payload, 0)[0]
    length = _uniform_length(payload, count)
    if length is not None:
        return _decode_uniform(payload, count, length)
    starts, lengths = _walk_packets(payload, count)
    return _decode_mixed(payload, starts, lengths)


def _uniform_length(payload: bytes, count: int) -> int | None:
    """The shared packet length when all ``count`` packets have it and tile the frame, else None."""
    if count == 0 or len(payload) < 4:
        return None
    length = _U16.unpack_from(payload, 2)[0]
    if 2 + count * (2 + length) != len(payload):
        return None
    prefixes = np.ndarray((count,), ">u2", buffer=payload, offset=2, strides=(2 + length,))
    return length if bool((prefixes == length).all()) else None


def _walk_packets(payload: bytes, count: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Offsets of the packet bodies and their lengths; FrameError unless they tile the frame exactly."""
    end = len(payload)
    starts: list[int] = []
    lengths: list[int] = []
    position = 2
    for index in range(count):
        if position + 2 > end:
            raise FrameError(f"frame ends before the length of packet {index + 1} of {count}", position)
        length = payload[position] << 8 | payload[position + 1]
        if position + 2 + length > end:
            raise FrameError(f"packet {index + 1} of {count} ({length} bytes) runs past the frame end", position)
        starts.append(position + 2)
        lengths.append(length)
        position += 2 + length
    if position != end:
        raise FrameError(f"{end - position} bytes after the last of {count} packets", position)
    return np.array(starts, dtype=np.intp), np.array(lengths, dtype=np.intp)


def _decode_uniform(payload: bytes, count: int, length: int) -> TickArray:
    kind = _KINDS.get(length)
    if kind is None:
        return np.empty(0, TICK_DTYPE)
    packets = np.ndarray((count, length), np.uint8, buffer=payload, offset=4, strides=(2 + length, 1))
    return _convert(packets, kind)


def _decode_mixed(payload: bytes, starts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]) -> TickArray:
    known = np.isin(lengths, _KNOWN_LENGTHS)
    starts, lengths = starts[known], lengths[known]
    ticks = np.empty(len(starts), TICK_DTYPE)
    frame = np.frombuffer(payload, np.uint8)
    for length, kind in _KINDS.items():
        rows = np.flatnonzero(lengths == length)
        if rows.size:
            ticks[rows] = _convert(sliding_window_view(frame, length)[starts[rows]], kind)
    return ticks


def _convert(packets: PacketBytes, kind: _PacketKind) -> TickArray:
    """Packets of one kind, one per row, to ``TICK_DTYPE`` rows with kiteconnect's arithmetic."""
    count = len(packets)
    ticks = np.zeros(count, TICK_DTYPE)
    ints = _block(ticks, _INT_FIELDS[0][0], np.int64)
    floats = _block(ticks, _FLOAT_FIELDS[0][0], np.float64)
    words = packets.view(">u4")
    segment = packets[:, 3]  # low byte of the big-endian token
    divisor = _DIVISOR_BY_SEGMENT[segment]
    floats[:, kind.prices.target] = words[:, kind.prices.source].astype(np.float64) / divisor[:, np.newaxis]
    ints[:, kind.integers.target] = words[:, kind.integers.source]
    if kind.length % 4 == 0 and isinstance(kind.shorts.source, np.ndarray):
        ints[:, kind.shorts.target] = packets.view(">u2")[:, kind.shorts.source]
    if kind.has_close:
        floats[:, _CHANGE_SLOT] = _percent_change(floats[:, _LAST_PRICE_SLOT], floats[:, _CLOSE_SLOT])
    ticks["mode"] = kind.mode
    ticks["tradable"] = segment != SEGMENT_INDICES
    return ticks


def _block(ticks: TickArray, first_field: str, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
    """A writable 2-D view of the run of same-typed fields starting at ``first_field``."""
    start = TICK_DTYPE.fields[first_field][1]
    width = sum(
        TICK_DTYPE.fields[name][0].itemsize
        for name in TICK_DTYPE.names
        if TICK_DTYPE.fields[name][0].base == np.dtype(dtype)
    )
    return np.ndarray(
        (len(ticks), width // 8), dtype, buffer=ticks, offset=start, strides=(TICK_DTYPE.itemsize, 8)
    )


def _percent_change(last_price: npt.NDArray[np.float64], close: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """kiteconnect's ``(last_price - close) * 100 / close``, in the same operation order, 0 when close is 0."""
    change = np.zeros_like(last_price)
    np.divide((last_price - close) * 100, close, out=change, where=close != 0)
    return change
