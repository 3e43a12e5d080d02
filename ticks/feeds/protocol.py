"""Vectorized decoder for Kite Connect v3 WebSocket binary tick frames (pure: no Django, no I/O).

A frame is ``uint16 count`` followed by ``count`` packets, each ``uint16 length`` + ``length`` bytes,
all big-endian (ref/kite-connect-v3.md §1.5). ``decode_frame`` returns one ``TICK_DTYPE`` row per
packet, field for field what ``kiteconnect.KiteTicker._parse_binary`` (5.2.2) produces, flattened:
``ohlc`` becomes ``open``/``high``/``low``/``close``, ``depth`` becomes ``bid_*``/``ask_*`` of shape
(5,), datetimes stay epoch seconds, and a field the packet kind does not carry is 0.

Choices; on every well-framed payload kiteconnect decodes, the rows equal its ticks:

* The packet kind comes from the packet length alone, as in kiteconnect: 8 ltp, 28/32 index
  quote/full, 44 quote, 184 full. A 28/32-byte packet with a non-index token is decoded with the
  index layout and ``tradable=True``; a 184-byte packet with an index token is decoded as a full
  packet with ``tradable=False``.
* Packets of any other length are skipped, as kiteconnect skips them: they are well framed, so
  skipping loses nothing we could decode, and a future packet kind does not take the feed down.
  (Packets under 4 bytes are skipped too; kiteconnect reads a token first and dies on them with
  ``struct.error``, so there is no behaviour of its to match.)
* Structural damage is never guessed around. A count promising more packets than the bytes hold, a
  length running past the end, or bytes after the last packet raise ``FrameError``; its ``offset``
  is where the trouble starts: the missing or cut-short length prefix, the prefix of the packet that
  runs past the end, or the first trailing byte. kiteconnect instead returns short packets, which
  can turn a cut-off full packet into a bogus quote.
* Frames shorter than 2 bytes are heartbeats and decode to an empty array.

Speed: when every packet has the same length (the usual 3000-instrument full-mode frame) the packets
are a strided view of the payload, checked with one numpy comparison; otherwise a tight loop walks the
length prefixes and the packets are gathered per length. Each packet kind is then one structured
assignment: a big-endian dtype naming the packet's fields at their byte offsets is copied, field by
field in C, onto a view of the output naming the same fields at their ``TICK_DTYPE`` offsets. The
price fields sit side by side in ``TICK_DTYPE`` so the rupee conversion is one 2-D division.
"""

import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

SEGMENT_INDICES: Final = 9
DEPTH_LEVELS: Final = 5

_DEPTH: Final = (DEPTH_LEVELS,)
# The price fields come first and side by side: converting them to rupees is one 2-D division.
_PRICE_FIELDS: Final = [
    ("last_price", np.float64),
    ("average_traded_price", np.float64),
    ("open", np.float64),
    ("high", np.float64),
    ("low", np.float64),
    ("close", np.float64),
    ("bid_price", np.float64, _DEPTH),
    ("ask_price", np.float64, _DEPTH),
]
TICK_DTYPE: Final = np.dtype(
    [
        *_PRICE_FIELDS,
        ("change", np.float64),
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
        ("bid_quantity", np.int64, _DEPTH),
        ("bid_orders", np.int64, _DEPTH),
        ("ask_quantity", np.int64, _DEPTH),
        ("ask_orders", np.int64, _DEPTH),
        ("mode", "U5"),
        ("tradable", np.bool_),
    ],
    align=True,
)
"""One decoded packet. Integers are int64 (the wire has uint32) so differences such as volume deltas
cannot wrap; prices are rupees; timestamps are epoch seconds, 0 when the packet kind has none.
``mode`` is kiteconnect's string: "ltp", "quote" or "full"."""

TickArray = npt.NDArray[np.void]
PacketBytes = npt.NDArray[np.uint8]


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
# order counts, uint16 (a depth entry is quantity u4, price u4, orders u2, 2 bytes of padding).
Layout = dict[str, int | range]
_UINT16_FIELDS: Final = frozenset({"bid_orders", "ask_orders"})
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
class _PacketKind:
    mode: str
    wire: np.dtype[np.void]  # the packet's fields, big-endian, at their byte offsets in the packet
    target: np.dtype[np.void]  # the same fields as int64/float64, at their offsets in TICK_DTYPE
    price_columns: int  # how many leading float64 slots of a row hold prices to divide
    has_close: bool


def _compile(mode: str, length: int, layout: Layout) -> _PacketKind:
    wire: dict[str, tuple[str, int]] = {}  # one entry per scalar: name -> (format, offset)
    target: dict[str, tuple[np.dtype[np.generic], int]] = {}
    for name, offsets in layout.items():
        field, field_offset = TICK_DTYPE.fields[name][:2]
        for element, offset in enumerate([offsets] if isinstance(offsets, int) else offsets):
            scalar = f"{name}[{element}]"
            wire[scalar] = (">u2" if name in _UINT16_FIELDS else ">u4", offset)
            target[scalar] = (field.base, field_offset + element * field.base.itemsize)
    return _PacketKind(
        mode=mode,
        wire=_struct(wire, length),
        target=_struct(target, TICK_DTYPE.itemsize),
        price_columns=1 + max(_last_slot(name) for name, *_ in _PRICE_FIELDS if name in layout),
        has_close="close" in layout,
    )


def _last_slot(name: str) -> int:
    """The index of the last 8-byte slot ``name`` occupies in a row."""
    field, offset = TICK_DTYPE.fields[name][:2]
    return (offset + field.itemsize) // 8 - 1


def _struct(fields: dict[str, tuple[str | np.dtype[np.generic], int]], itemsize: int) -> np.dtype[np.void]:
    formats, offsets = zip(*fields.values(), strict=True)
    return np.dtype({"names": list(fields), "formats": formats, "offsets": offsets, "itemsize": itemsize})


_KINDS: Final = {
    length: _compile(mode, length, layout)
    for mode, length, layout in (
        ("ltp", 8, _LTP_LAYOUT),
        ("quote", 28, _INDEX_QUOTE_LAYOUT),
        ("full", 32, {**_INDEX_QUOTE_LAYOUT, "exchange_timestamp": 28}),
        ("quote", 44, _QUOTE_LAYOUT),
        ("full", 184, _FULL_LAYOUT),
    )
}
_KNOWN_LENGTHS: Final = np.array(sorted(_KINDS), dtype=np.intp)
_ROW_BYTES: Final = np.dtype((np.void, TICK_DTYPE.itemsize))


def decode_frame(payload: bytes) -> TickArray:
    """Decode one binary WebSocket message into a ``TICK_DTYPE`` array, one row per packet."""
    if len(payload) < 2:
        return np.empty(0, TICK_DTYPE)
    count = _U16.unpack_from(payload, 0)[0]
    length = _uniform_length(payload, count)
    if length is not None:
        return _decode_uniform(payload, count, length)
    return _decode_mixed(payload, _walk_packets(payload, count))


def _uniform_length(payload: bytes, count: int) -> int | None:
    """The shared packet length when all ``count`` packets have it and tile the frame, else None."""
    if count == 0 or len(payload) < 4:
        return None
    length = _U16.unpack_from(payload, 2)[0]
    if 2 + count * (2 + length) != len(payload):
        return None
    prefixes = np.ndarray((count,), ">u2", buffer=payload, offset=2, strides=(2 + length,))
    return length if bool((prefixes == length).all()) else None


def _walk_packets(payload: bytes, count: int) -> npt.NDArray[np.intp]:
    """Offsets of the ``count`` packet bodies plus where a next one would start; FrameError unless the
    length prefixes tile the frame exactly."""
    end = len(payload)
    bodies: list[int] = []
    append = bodies.append
    body = 4  # a body starts right after its 2-byte length prefix
    for _ in range(count):
        if body > end:
            break
        append(body)
        body += 2 + (payload[body - 2] << 8 | payload[body - 1])
    position = body - 2
    if position > end:
        raise FrameError(f"packet {len(bodies)} of {count} runs past the frame end", bodies[-1] - 2)
    if len(bodies) < count:
        raise FrameError(f"frame ends before the length of packet {len(bodies) + 1} of {count}", position)
    if position < end:
        raise FrameError(f"{end - position} bytes after the last of {count} packets", position)
    append(body)
    return np.array(bodies, dtype=np.intp)


def _decode_uniform(payload: bytes, count: int, length: int) -> TickArray:
    kind = _KINDS.get(length)
    if kind is None:
        return np.empty(0, TICK_DTYPE)
    packets = np.ndarray((count, length), np.uint8, buffer=payload, offset=4, strides=(2 + length, 1))
    return _convert(packets, kind)


def _decode_mixed(payload: bytes, bodies: npt.NDArray[np.intp]) -> TickArray:
    starts = bodies[:-1]
    lengths = np.diff(bodies) - 2
    known = np.isin(lengths, _KNOWN_LENGTHS)
    starts, lengths = starts[known], lengths[known]
    ticks = np.empty(len(starts), TICK_DTYPE)
    frame = np.frombuffer(payload, np.uint8)
    for length, kind in _KINDS.items():
        rows = np.flatnonzero(lengths == length)
        if rows.size:
            converted = _convert(sliding_window_view(frame, length)[starts[rows]], kind)
            # Scattering rows as opaque bytes is a memcpy each; a structured scatter goes field by field.
            ticks.view(_ROW_BYTES)[rows] = converted.view(_ROW_BYTES)
    return ticks


def _convert(packets: PacketBytes, kind: _PacketKind) -> TickArray:
    """Packets of one kind, one per row, to ``TICK_DTYPE`` rows with kiteconnect's arithmetic."""
    ticks = np.zeros(len(packets), TICK_DTYPE)
    ticks.view(kind.target)[...] = packets.view(kind.wire)[:, 0]
    segment = packets[:, 3]  # low byte of the big-endian token
    prices = _prices(ticks, kind.price_columns)
    # The prices went uint32 -> float64 exactly, so this is the one division kiteconnect does per value.
    prices /= _DIVISOR_BY_SEGMENT[segment][:, np.newaxis]
    if kind.has_close:
        ticks["change"] = _percent_change(ticks["last_price"], ticks["close"])
    ticks["mode"] = kind.mode
    ticks["tradable"] = segment != SEGMENT_INDICES
    return ticks


def _prices(ticks: TickArray, columns: int) -> npt.NDArray[np.float64]:
    """The first ``columns`` price slots of every row (the price fields lead TICK_DTYPE), as a view."""
    strides = (TICK_DTYPE.itemsize, 8)
    return np.ndarray((len(ticks), columns), np.float64, buffer=ticks, offset=0, strides=strides)


def _percent_change(
    last_price: npt.NDArray[np.float64], close: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """kiteconnect's ``(last_price - close) * 100 / close``, in the same operation order, 0 when close is 0."""
    change = np.zeros_like(last_price)
    np.divide((last_price - close) * 100, close, out=change, where=close != 0)
    return change
