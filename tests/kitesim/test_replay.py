"""Recording outbound frames and replaying them."""

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from kiteconnect import KiteTicker
from websockets.sync.client import ClientConnection, connect

from kitesim.replay import FrameRecorder, FrameReplay, filter_frame, read_recording
from kitesim.testing import KitesimThread
from kitesim.wire import MODE_FULL, MODE_LTP, MODE_QUOTE, TickColumns, encode_frame, split_packets
from ticks.feeds.recording import MAGIC

OPTION, INDEX = 47164 << 8 | 2, 256265


def _frame(mode: int = MODE_FULL) -> bytes:
    cols = TickColumns.for_tokens(np.array([OPTION, INDEX]))
    cols.last[:] = [101.5, 24_876.55]
    cols.high[:] = cols.last + 1
    return encode_frame(cols, {mode: np.arange(2)})


def test_recording_round_trip(tmp_path: Path) -> None:
    recorder = FrameRecorder(tmp_path / "ticks.ksim")
    recorder.write(1_786_938_900.25, _frame())
    recorder.write(1_786_938_900.75, b"\x00\x00")
    recorder.close()
    assert (tmp_path / "ticks.ksim").read_bytes().startswith(MAGIC)
    assert list(read_recording(tmp_path / "ticks.ksim")) == [
        (1_786_938_900.25, _frame()),
        (1_786_938_900.75, b"\x00\x00"),
    ]


def test_foreign_and_truncated_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "foreign").write_bytes(b"hello")
    with pytest.raises(ValueError, match="is not a frame recording"):
        list(read_recording(tmp_path / "foreign"))
    (tmp_path / "cut").write_bytes(MAGIC + struct.pack(">dI", 1.0, 50) + b"short")
    with pytest.raises(ValueError, match="truncated frame"):
        list(read_recording(tmp_path / "cut"))
    with pytest.raises(ValueError, match="no frames"):
        FrameReplay([])


def test_filter_keeps_subscribed_tokens_cut_to_their_mode() -> None:
    parse = KiteTicker("k", "t")._parse_binary
    kept = filter_frame(_frame(), {OPTION: MODE_QUOTE, INDEX: MODE_LTP})
    assert kept is not None
    assert [(t["instrument_token"], t["mode"]) for t in parse(kept)] == [(INDEX, "ltp"), (OPTION, "quote")]
    assert [len(p) for p in split_packets(filter_frame(_frame(), {INDEX: MODE_QUOTE}) or b"")] == [28]
    assert [len(p) for p in split_packets(filter_frame(_frame(MODE_LTP), {OPTION: MODE_FULL}) or b"")] == [8]
    assert filter_frame(_frame(), {1: MODE_FULL}) is None


def test_replay_hands_out_frames_as_time_passes() -> None:
    replay = FrameReplay([(20.0, b"b"), (10.0, b"a"), (30.0, b"c")])
    assert replay.start_epoch == 10.0
    assert replay.due(9.0) == [] and replay.due(20.0) == [b"a", b"b"]
    assert replay.due(100.0) == [b"c"] and replay.finished


def _receive_tick_frames(ws: ClientConnection, count: int) -> None:
    """Read until ``count`` tick frames (not heartbeats) came, within 10 s."""
    deadline = time.monotonic() + 10.0
    while count > 0:
        assert time.monotonic() < deadline, f"{count} tick frames short after 10 s"
        message = ws.recv(timeout=5)
        if isinstance(message, bytes) and len(message) > 2:
            count -= 1


@pytest.mark.integration
def test_record_then_replay_to_a_subscriber(tmp_path: Path) -> None:
    path = tmp_path / "session.ksim"
    with (
        KitesimThread(seed=7, speed=10, record=path) as live,
        connect(f"{live.ws_root}/?api_key=demo&access_token=demotoken") as ws,
    ):
        ws.send(json.dumps({"a": "subscribe", "v": [INDEX, 265]}))
        ws.send(json.dumps({"a": "mode", "v": ["full", [INDEX, 265]]}))
        _receive_tick_frames(ws, 7)  # each is recorded once sent: more than 5 by the time the 7th is here
    recorded = list(read_recording(path))
    assert len(recorded) > 5
    sent = [
        t["last_price"]
        for _, f in recorded
        for t in KiteTicker("k", "t")._parse_binary(f)
        if t["instrument_token"] == INDEX
    ]
    with (
        KitesimThread(seed=99, speed=10, replay=path) as again,
        connect(f"{again.ws_root}/?api_key=demo&access_token=demotoken") as ws,
    ):
        assert again.state is not None and again.state.clock.now() >= recorded[0][0]
        ws.send(json.dumps({"a": "subscribe", "v": [INDEX]}))
        got: list[float] = []
        deadline = time.monotonic() + 4.0
        while len(got) < 3 and time.monotonic() < deadline:
            message = ws.recv(timeout=5)
            if isinstance(message, bytes) and len(message) > 1:
                ticks = KiteTicker("k", "t")._parse_binary(message)
                assert {(t["instrument_token"], t["mode"]) for t in ticks} == {(INDEX, "quote")}
                got.extend(t["last_price"] for t in ticks)
    assert got and all(price in sent for price in got)
