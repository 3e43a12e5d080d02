"""The WebSocket ticker, driven by the official KiteTicker (one interpreter per scenario) and raw sockets."""

import contextlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from kitesim.testing import KitesimThread
from kitesim.wire import packet_count, split_packets

pytestmark = pytest.mark.integration
PROBE = Path(__file__).with_name("kiteticker_probe.py")
Event = dict[str, Any]


class Probe:
    """A KiteTicker in a child interpreter; its callbacks arrive here as events."""

    def __init__(self, server: KitesimThread, *, access_token: str | None = None, seconds: float = 20,
                 max_tries: int = 5, **modes: list[int]) -> None:
        command = [sys.executable, str(PROBE), "--root", server.ws_root, "--api-key", server.api_key,
                   "--access-token", access_token or server.access_token, "--seconds", str(seconds),
                   "--max-tries", str(max_tries)]
        for mode, tokens in modes.items():
            command += [f"--{mode}", ",".join(map(str, tokens))]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - read on failure, closed in close()
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.events: list[Event] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 20.0, after: float = 0.0) -> Event:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((e for e in self.events if e["at"] >= after and predicate(e)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    self._stderr.seek(0)
                    raise AssertionError(f"no such event; got {[e['event'] for e in self.events]}; "
                                         f"stderr: {self._stderr.read()[-2000:]!r}")
                self._changed.wait(left)

    def ticks(self, after: float = 0.0) -> list[Event]:
        with self._changed:
            return [t for e in self.events if e["event"] == "ticks" and e["at"] >= after for t in e["ticks"]]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._stderr.close()


@pytest.fixture
def server() -> Iterator[KitesimThread]:
    with KitesimThread(seed=7, speed=60) as sim:
        yield sim


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    started: list[Probe] = []
    yield started
    for probe in started:
        probe.close()


def _token(server: KitesimThread, key: str) -> int:
    assert server.state is not None
    inst = server.state.market.universe.by_key(key)
    assert inst is not None, key
    return inst.instrument_token


def _option(server: KitesimThread) -> int:
    assert server.state is not None
    nifty = [i for i in server.state.market.universe.all() if i.underlying == "NIFTY" and i.instrument_type == "CE"]
    nearest = min(i.expiry for i in nifty if i.expiry is not None)
    return next(i.instrument_token for i in nifty if i.expiry == nearest and i.strike == 24_800)


def _future(server: KitesimThread) -> int:
    assert server.state is not None
    return next(i.instrument_token for i in server.state.market.universe.all() if i.instrument_type == "FUT")


def _raw(server: KitesimThread, token: str | None = None, path: str = "/") -> ClientConnection:
    return connect(f"{server.ws_root}{path}?api_key={server.api_key}&access_token={token or server.access_token}",
                   open_timeout=10, max_size=None)


def _binary_frames(ws: ClientConnection, seconds: float) -> list[bytes]:
    frames, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            message = ws.recv(timeout=max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        if isinstance(message, bytes) and len(message) > 1:
            frames.append(message)
    return frames


# --- the official client ----------------------------------------------------------------------------


def _check_full_tick(tick: Event) -> None:
    assert tick["mode"] == "full" and tick["tradable"]
    ohlc = tick["ohlc"]
    assert ohlc["low"] <= tick["last_price"] <= ohlc["high"]
    assert tick["volume_traded"] > 0 and tick["oi_day_low"] <= tick["oi"] <= tick["oi_day_high"]
    buy, sell = tick["depth"]["buy"], tick["depth"]["sell"]
    assert len(buy) == len(sell) == 5
    assert buy[0]["price"] < sell[0]["price"]
    assert [b["price"] for b in buy] == sorted((b["price"] for b in buy), reverse=True)
    assert tick["last_trade_time"] is not None and tick["exchange_timestamp"] is not None


def test_kiteticker_decodes_every_mode(server: KitesimThread, probes: list[Probe]) -> None:
    option, future = _option(server), _future(server)
    probes.append(Probe(server, full=[option, 256265], quote=[future], ltp=[265]))
    probe = probes[0]
    probe.wait_for(lambda e: e["event"] == "connect")
    time.sleep(4.0)
    by_token: dict[int, list[Event]] = {}
    for tick in probe.ticks():
        by_token.setdefault(tick["instrument_token"], []).append(tick)
    assert set(by_token) == {option, 256265, future, 265}
    assert {t["mode"] for t in by_token[265]} == {"ltp"} and len(by_token[265][-1]) == 4
    assert {t["mode"] for t in by_token[future]} == {"quote"}
    for tick in by_token[option][1:]:  # the very first may predate the mode message
        _check_full_tick(tick)
    index = by_token[256265][-1]
    assert index["mode"] == "full" and index["tradable"] is False and index["exchange_timestamp"] is not None
    assert index["ohlc"]["low"] <= index["last_price"] <= index["ohlc"]["high"]
    assert len(by_token[option]) >= 4  # the option keeps ticking


def test_bad_token_gets_403(server: KitesimThread, probes: list[Probe]) -> None:
    probes.append(Probe(server, access_token="wrong", max_tries=1))
    event = probes[0].wait_for(lambda e: e["event"] in ("error", "close"))
    assert "403" in event["reason"]


def test_fourth_connection_gets_429(server: KitesimThread, probes: list[Probe]) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(_raw(server))
        probes.append(Probe(server, max_tries=1))
        event = probes[0].wait_for(lambda e: e["event"] in ("error", "close"))
        assert "429" in event["reason"]


def test_more_than_3000_instruments_is_an_error_message(probes: list[Probe]) -> None:
    with KitesimThread(seed=7, speed=5, strikes_each_side=80) as big:
        assert big.state is not None
        tokens = [i.instrument_token for i in big.state.market.universe.all()][:3001]
        probes.append(Probe(big, ltp=tokens))
        error = probes[0].wait_for(lambda e: e["event"] == "error")
        assert (error["code"], error["reason"]) == (0, "Can't subscribe to more than 3000 instruments.")
        assert len(big.state.market.universe) > 3001
        deadline = time.monotonic() + 15
        while len({t["instrument_token"] for t in probes[0].ticks()}) < 3000 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len({t["instrument_token"] for t in probes[0].ticks()}) == 3000
        assert not [e for e in probes[0].events if e["event"] == "close"]


def test_reconnects_and_resubscribes_after_a_drop(server: KitesimThread, probes: list[Probe]) -> None:
    option = _option(server)
    probes.append(Probe(server, full=[option]))
    probe = probes[0]
    probe.wait_for(lambda e: e["event"] == "ticks")
    assert requests.post(f"{server.root}/_sim/drop", timeout=5).json() == {"dropped": 1}
    closed = probe.wait_for(lambda e: e["event"] == "close")
    assert closed["code"] == 1006
    probe.wait_for(lambda e: e["event"] == "connect", after=closed["at"])
    resumed = probe.wait_for(lambda e: e["event"] == "ticks", after=closed["at"])
    assert {t["instrument_token"] for t in resumed["ticks"]} == {option}
    state = requests.get(f"{server.root}/_sim/state", timeout=5).json()
    assert state["connections_per_key"] == {"demo": 1} and state["subscriptions"] == 1


def test_stall_silences_ticks_and_heartbeats_then_resumes(server: KitesimThread, probes: list[Probe]) -> None:
    probes.append(Probe(server, full=[_option(server), 256265]))
    probe = probes[0]
    probe.wait_for(lambda e: e["event"] == "ticks")
    requests.post(f"{server.root}/_sim/faults", json={"stall_seconds": 3.0}, timeout=5).raise_for_status()
    stalled_at = time.monotonic()
    resumed = probe.wait_for(lambda e: e["event"] in ("ticks", "heartbeat"), after=stalled_at + 0.3)
    assert resumed["at"] - stalled_at >= 2.5
    assert not [e for e in probe.events if e["event"] == "close"]


def test_heartbeats_when_idle(server: KitesimThread, probes: list[Probe]) -> None:
    probes.append(Probe(server))
    first = probes[0].wait_for(lambda e: e["event"] == "heartbeat")
    second = probes[0].wait_for(lambda e: e["event"] == "heartbeat", after=first["at"] + 0.01)
    assert 0.5 < second["at"] - first["at"] < 3.0


def test_order_updates_reach_on_order_update(server: KitesimThread, probes: list[Probe]) -> None:
    probes.append(Probe(server))
    probes[0].wait_for(lambda e: e["event"] == "connect")
    time.sleep(0.5)
    payload = {"order_id": "151220000000000", "status": "COMPLETE", "order_timestamp": "2026-08-17 09:16:39"}
    assert server.state is not None
    server.call(server.state.order_updates.publish, "demo", payload)
    server.call(server.state.order_updates.publish, "someone-else", {"order_id": "x"})
    assert probes[0].wait_for(lambda e: e["event"] == "order")["data"] == payload
    time.sleep(0.5)
    assert len([e for e in probes[0].events if e["event"] == "order"]) == 1


# --- raw protocol -------------------------------------------------------------------------------------


def test_default_mode_is_quote_and_modes_change_packet_layouts(server: KitesimThread) -> None:
    option = _option(server)
    with _raw(server, path="/any/path") as ws:
        ws.send(json.dumps({"a": "subscribe", "v": [option, 256265, 999_999_999]}))
        ws.send(json.dumps({"a": "subscribe", "v": [option]}))
        lengths = {len(p) for f in _binary_frames(ws, 1.5) for p in split_packets(f)}
        assert lengths == {44, 28}
        ws.send(json.dumps({"a": "mode", "v": ["ltp", [option, 256265, 12345]]}))
        _binary_frames(ws, 0.3)  # drain what was in flight before the change
        frames = _binary_frames(ws, 1.5)
        assert frames and {len(p) for f in frames for p in split_packets(f)} == {8}
        assert all(packet_count(f) <= 2 for f in frames)
        ws.send(json.dumps({"a": "unsubscribe", "v": [option, 256265]}))
        _binary_frames(ws, 0.3)
        assert _binary_frames(ws, 1.5) == []


def test_ignored_messages_keep_the_connection(server: KitesimThread) -> None:
    with _raw(server) as ws:
        for junk in ("not json", "[1, 2]", json.dumps({"a": "dance", "v": [1]})):
            ws.send(junk)
        ws.send(b"\x01\x02")
        ws.send(json.dumps({"a": "subscribe", "v": [256265]}))
        assert _binary_frames(ws, 2.0)


@pytest.mark.parametrize("payload", [{"a": "subscribe", "v": [[1, 2]]}, {"a": "mode", "v": ["full", "256265"]},
                                     {"a": "mode", "v": ["fastest", [256265]]}])
def test_malformed_payloads_drop_the_connection(server: KitesimThread, payload: dict[str, Any]) -> None:
    with _raw(server) as ws:
        ws.send(json.dumps(payload))
        with pytest.raises(ConnectionClosed) as closed:
            _binary_frames(ws, 5.0)
        assert closed.value.rcvd is None  # no close frame: the client reports 1006


def test_wrong_or_expired_tokens_are_refused_at_upgrade(server: KitesimThread) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _raw(server, token="nope")
    assert refused.value.response.status_code == 403
    with _raw(server) as ws:
        requests.post(f"{server.root}/_sim/expire_tokens", timeout=5).raise_for_status()
        with pytest.raises(ConnectionClosed):
            _binary_frames(ws, 5.0)
    with pytest.raises(InvalidStatus) as expired:
        _raw(server)
    assert expired.value.response.status_code == 403


def test_malformed_frame_fault_garbles_the_next_frames(server: KitesimThread) -> None:
    with _raw(server) as ws:
        ws.send(json.dumps({"a": "subscribe", "v": [_option(server), 256265]}))
        ws.send(json.dumps({"a": "mode", "v": ["full", [_option(server), 256265]]}))
        assert _binary_frames(ws, 1.0)
        requests.post(f"{server.root}/_sim/faults", json={"malformed_frames_next": 1}, timeout=5).raise_for_status()
        verdicts = [_well_formed(f) for f in _binary_frames(ws, 1.5)]
        assert verdicts.count(False) == 1 and len(verdicts) > 2


def _well_formed(frame: bytes) -> bool:
    """Every packet the header promises is there, with the length its prefix declares."""
    try:
        packets = split_packets(frame)
    except struct.error:
        return False
    declared = [struct.unpack_from(">H", frame, 2 + sum(2 + len(q) for q in packets[:k]))[0] for k in range(len(packets))]
    return [len(p) for p in packets] == declared and 2 + sum(2 + n for n in declared) == len(frame)


def test_reject_upgrade_faults(server: KitesimThread) -> None:
    for fault, status in (("reject_upgrades_403", 403), ("reject_upgrades_429", 429)):
        requests.post(f"{server.root}/_sim/faults", json={fault: True}, timeout=5).raise_for_status()
        with pytest.raises(InvalidStatus) as refused:
            _raw(server)
        assert refused.value.response.status_code == status
        requests.post(f"{server.root}/_sim/faults", json={fault: False}, timeout=5).raise_for_status()
    with _raw(server) as ws:
        ws.send(json.dumps({"a": "subscribe", "v": [256265]}))
        assert _binary_frames(ws, 1.0)
