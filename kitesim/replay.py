"""Recording outbound tick frames and replaying them to subscribers instead of the market model.

File format (binary, big-endian): the 8-byte magic ``KSIMREC1``, then one record per frame:
``float64 simulated epoch seconds | uint32 frame length | frame bytes``. Frames are the raw binary
tick frames exactly as sent (heartbeats and text messages are not recorded).

Replay plays each frame once, when the simulated clock passes its timestamp; the clock starts at the
first record. Each frame is filtered to the receiving connection's tokens, and a packet recorded in
a richer mode than the connection asked for is cut down (full -> quote -> ltp are prefixes of each
other). A packet recorded in a poorer mode is sent as recorded. After the last record the server
only sends heartbeats.
"""

import struct
from pathlib import Path
from typing import BinaryIO

from kitesim.wire import MODE_FULL, MODE_LTP, MODE_QUOTE, split_packets

MAGIC = b"KSIMREC1"
RECORD = struct.Struct(">dI")
INDEX_SEGMENT = 9
PACKET_LENGTH = {  # (is index, mode) -> packet length
    (False, MODE_LTP): 8, (False, MODE_QUOTE): 44, (False, MODE_FULL): 184,
    (True, MODE_LTP): 8, (True, MODE_QUOTE): 28, (True, MODE_FULL): 32,
}


class FrameRecorder:
    """Appends frames to a recording file; flushes every record so a killed server loses little."""

    def __init__(self, path: Path) -> None:
        self._handle: BinaryIO = Path(path).open("wb")  # noqa: SIM115 - lives until close()
        self._handle.write(MAGIC)
        self.frames = 0

    def write(self, sim_epoch: float, frame: bytes) -> None:
        self._handle.write(RECORD.pack(sim_epoch, len(frame)) + frame)
        self._handle.flush()
        self.frames += 1

    def close(self) -> None:
        self._handle.close()


def read_recording(path: Path) -> list[tuple[float, bytes]]:
    """Every (simulated epoch, frame) of a recording; ValueError on a foreign or truncated file."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a kitesim recording")
    records, offset = [], len(MAGIC)
    while offset < len(data):
        if offset + RECORD.size > len(data):
            raise ValueError(f"{path}: truncated record header at byte {offset}")
        epoch, length = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        if offset + length > len(data):
            raise ValueError(f"{path}: truncated frame at byte {offset}")
        records.append((epoch, data[offset : offset + length]))
        offset += length
    return records


def filter_frame(frame: bytes, modes: dict[int, int]) -> bytes | None:
    """The packets of ``frame`` for subscribed tokens, cut to the subscribed mode; None if none left."""
    kept = []
    for packet in split_packets(frame):
        token = int.from_bytes(packet[:4], "big")
        mode = modes.get(token)
        if mode is None:
            continue
        wanted = PACKET_LENGTH[(token & 0xFF == INDEX_SEGMENT, mode)]
        kept.append(packet[:wanted] if len(packet) > wanted else packet)
    if not kept:
        return None
    return struct.pack(">H", len(kept)) + b"".join(struct.pack(">H", len(p)) + p for p in kept)


class FrameReplay:
    """The frames of a recording, handed out as simulated time passes their timestamps."""

    def __init__(self, records: list[tuple[float, bytes]]) -> None:
        if not records:
            raise ValueError("the recording holds no frames")
        self._records = sorted(records, key=lambda r: r[0])
        self._next = 0

    @classmethod
    def from_file(cls, path: Path) -> "FrameReplay":
        return cls(read_recording(path))

    @property
    def start_epoch(self) -> float:
        return self._records[0][0]

    @property
    def finished(self) -> bool:
        return self._next >= len(self._records)

    def due(self, now: float) -> list[bytes]:
        frames = []
        while self._next < len(self._records) and self._records[self._next][0] <= now:
            frames.append(self._records[self._next][1])
            self._next += 1
        return frames
