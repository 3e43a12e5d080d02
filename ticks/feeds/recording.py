"""Raw Kite frames with timestamps on disk: what feeds record and what kitesim replays.

Format (big-endian): the 8-byte magic ``KSIMREC1``, then per frame
``float64 epoch seconds | uint32 frame length | frame bytes``. Feeds stamp frames with their
receive time; kitesim with its simulated send time. Either file replays through the other.
"""

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

MAGIC = b"KSIMREC1"
RECORD = struct.Struct(">dI")


class FrameRecorder:
    """Appends frames; flushes every record so a killed process loses at most one."""

    def __init__(self, path: Path) -> None:
        self._handle: BinaryIO = Path(path).open("wb")  # noqa: SIM115 - lives as long as the recorder
        self._handle.write(MAGIC)
        self.frames = 0

    def write(self, epoch: float, frame: bytes) -> None:
        self._handle.write(RECORD.pack(epoch, len(frame)) + frame)
        self._handle.flush()
        self.frames += 1

    def close(self) -> None:
        self._handle.close()


def read_recording(path: Path) -> Iterator[tuple[float, bytes]]:
    """Every (epoch, frame) in order; ValueError naming the byte offset on a foreign or truncated file."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a frame recording (no {MAGIC.decode()} header)")
    offset = len(MAGIC)
    while offset < len(data):
        if offset + RECORD.size > len(data):
            raise ValueError(f"{path}: truncated record header at byte {offset}")
        epoch, length = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        if offset + length > len(data):
            raise ValueError(f"{path}: truncated frame at byte {offset}")
        yield epoch, data[offset : offset + length]
        offset += length
