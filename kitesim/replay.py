"""Recording outbound tick frames and replaying them to subscribers instead of the market model.

The file format is ticks.feeds.recording's (shared with the feeds' recorder, so a feed's recording
replays here): raw binary tick frames exactly as sent, stamped with simulated epoch seconds
(heartbeats and text messages are not recorded).

Replay plays each frame once, when the simulated clock passes its timestamp; the clock starts at the
first record. Each frame is filtered to the receiving connection's tokens, and a packet recorded in
a richer mode than the connection asked for is cut down (full -> quote -> ltp are prefixes of each
other). A packet recorded in a poorer mode is sent as recorded. After the last record the server
only sends heartbeats.
"""

import struct
from pathlib import Path

from kitesim.wire import MODE_FULL, MODE_LTP, MODE_QUOTE, split_packets
from ticks.feeds.recording import FrameRecorder, read_recording

__all__ = ["FrameRecorder", "FrameReplay", "filter_frame", "read_recording"]

INDEX_SEGMENT = 9
PACKET_LENGTH = {  # (is index, mode) -> packet length
    (False, MODE_LTP): 8, (False, MODE_QUOTE): 44, (False, MODE_FULL): 184,
    (True, MODE_LTP): 8, (True, MODE_QUOTE): 28, (True, MODE_FULL): 32,
}


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
        return cls(list(read_recording(path)))

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
