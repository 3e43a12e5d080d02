"""decode_frame vs kiteconnect's KiteTicker._parse_binary on 3000-packet frames, same process, one core.

Prints packets/s for both and the speed-up, for an all-full-mode frame (the equal-length fast path)
and a mixed ltp/quote/full/index frame (the per-packet length walk). Targets: >= 100x and >= 5 M
packets/s on the full-mode frame.
"""

import random
import struct
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/decode.py`

from kiteconnect import KiteTicker

from ticks.feeds.protocol import decode_frame

PACKETS = 3000
NFO, INDICES = 2, 9
_random = random.Random(20240101)


def _u32() -> int:
    return _random.randrange(2**32)


def _full(token: int) -> bytes:
    head = struct.pack(">16I", token, *(_u32() for _ in range(15)))
    depth = b"".join(struct.pack(">IIH2x", _u32(), _u32(), _random.randrange(2**16)) for _ in range(10))
    return head + depth


def _mixed(index: int) -> bytes:
    token = index << 8 | (INDICES if index % 5 >= 3 else NFO)
    kind = index % 5
    if kind == 0:
        return struct.pack(">2I", token, _u32())
    if kind == 1:
        return struct.pack(">11I", token, *(_u32() for _ in range(10)))
    if kind == 2:
        return _full(token)
    if kind == 3:
        return struct.pack(">6Ii", token, *(_u32() for _ in range(5)), 0)
    return struct.pack(">6IiI", token, *(_u32() for _ in range(5)), 0, _u32())


def _frame(packets: list[bytes]) -> bytes:
    return struct.pack(">H", len(packets)) + b"".join(struct.pack(">H", len(p)) + p for p in packets)


def _cpu_seconds_per_call(call: Callable[[], object], number: int) -> float:
    """Best of 5 repeats, in CPU time of this process: the box is shared, and the target is per core."""
    timer = timeit.Timer(call, timer=time.process_time)
    return min(timer.repeat(repeat=5, number=number)) / number


def _report(label: str, payload: bytes) -> None:
    oracle = KiteTicker("api_key", "access_token")
    ours = _cpu_seconds_per_call(lambda: decode_frame(payload), number=50)
    theirs = _cpu_seconds_per_call(lambda: oracle._parse_binary(payload), number=1)
    print(f"{label}: {PACKETS} packets, {len(payload):,} bytes (CPU time, best of 5)")
    for name, seconds in (("decode_frame", ours), ("KiteTicker._parse_binary", theirs)):
        print(f"  {name:24s}  {seconds * 1e6:9.0f} us/frame  {PACKETS / seconds / 1e6:7.3f} M packets/s")
    print(f"  speed-up                  {theirs / ours:9.0f}x")


def main() -> None:
    _report("full mode", _frame([_full(n << 8 | NFO) for n in range(PACKETS)]))
    _report("mixed ltp/quote/full/index quote/index full", _frame([_mixed(n) for n in range(PACKETS)]))


if __name__ == "__main__":
    main()
