"""The Kite WebSocket ticker: upgrade checks, per-connection senders, and the hub that fans ticks out.

The market pump (:mod:`kitesim.server`) calls :meth:`TickerHub.publish` after every market step;
each connection ORs the changed rows it subscribes to into a dirty mask and its sender task turns
the mask into one frame per loop iteration with the current values (a slow client gets conflated
ticks, never stale ones). Replay mode hands recorded frames to :meth:`TickerHub.publish_frames`.
"""

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Coroutine
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from kitesim.replay import FrameRecorder, filter_frame
from kitesim.state import SimState
from kitesim.subscriptions import (
    TOO_MANY_TOKENS,
    ClientAction,
    MalformedMessage,
    SubscriptionSet,
    parse_client_message,
)
from kitesim.wire import HEARTBEAT, encode_frame, garble_frame

log = logging.getLogger("kitesim.ticker")
MAX_CONNECTIONS_PER_KEY = 3
HEARTBEAT_INTERVAL_S = 1.5
STALL_POLL_S = 0.05


class TickerConnection:
    """One client socket: its subscriptions, dirty rows and the lock that serialises its sends."""

    def __init__(self, conn_id: int, api_key: str, access_token: str, request: web.Request) -> None:
        self.id = conn_id
        self.api_key = api_key
        self.access_token = access_token
        self.ws = web.WebSocketResponse(autoping=True, max_msg_size=4 * 1024 * 1024)
        self.transport = request.transport
        self.subs = SubscriptionSet()
        self.dirty = np.zeros(0, dtype=bool)
        self.replayed: list[bytes] = []
        self.wake = asyncio.Event()
        self.last_sent = time.monotonic()
        self._send_lock = asyncio.Lock()

    async def send_bytes(self, payload: bytes) -> None:
        async with self._send_lock:
            await self.ws.send_bytes(payload)
            self.last_sent = time.monotonic()

    async def send_json(self, payload: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_str(json.dumps(payload))
            self.last_sent = time.monotonic()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame: the client sees 1006."""
        if self.transport is not None:
            self.transport.abort()


class TickerHub:
    """Every live ticker connection of one server."""

    def __init__(self, state: SimState, recorder: FrameRecorder | None = None, replay: bool = False) -> None:
        self.state = state
        self.recorder = recorder
        self.replay = replay
        self.connections: dict[int, TickerConnection] = {}
        self._ids = itertools.count(1)

    # --- admission ---------------------------------------------------------------------------

    def refusal(self, api_key: str, access_token: str) -> web.HTTPException | None:
        faults, now = self.state.faults, self.state.clock.now()
        if faults.reject_upgrades_403 or self.state.accounts.authenticate(api_key, access_token, now) is None:
            return web.HTTPForbidden(text="Forbidden")
        if faults.reject_upgrades_429 or len(self.live(api_key)) >= MAX_CONNECTIONS_PER_KEY:
            return web.HTTPTooManyRequests(text="Too many connections")
        return None

    def register(self, api_key: str, access_token: str, request: web.Request) -> TickerConnection:
        conn = TickerConnection(next(self._ids), api_key, access_token, request)
        self.connections[conn.id] = conn
        return conn

    def unregister(self, conn: TickerConnection) -> None:
        self.connections.pop(conn.id, None)

    def live(self, api_key: str | None = None) -> list[TickerConnection]:
        return [c for c in self.connections.values() if api_key is None or c.api_key == api_key]

    def drop(self, api_key: str | None = None) -> int:
        doomed = self.live(api_key)
        for conn in doomed:
            conn.abort()
        return len(doomed)

    def drop_expired(self) -> int:
        """Abort connections whose token no longer authenticates (06:00 expiry, expire_tokens)."""
        now = self.state.clock.now()
        doomed = [c for c in self.connections.values()
                  if self.state.accounts.authenticate(c.api_key, c.access_token, now) is None]
        for conn in doomed:
            conn.abort()
        return len(doomed)

    # --- fan-out -----------------------------------------------------------------------------

    def stalled(self) -> bool:
        return self.state.faults.stall_seconds > 0

    def _mode_rows(self, conn: TickerConnection) -> np.ndarray:
        market = self.state.market
        modes = conn.subs.rows(market.rows, market.generation, market.table.token.size)
        if conn.dirty.size != modes.size:
            conn.dirty = modes > 0  # a new session: everyone gets a fresh snapshot
        return modes

    def publish(self, changed: np.ndarray, ltp_changed: np.ndarray) -> None:
        for conn in self.connections.values():
            if not conn.subs:
                continue
            self._mode_rows(conn)
            conn.dirty |= conn.subs.wants(changed, ltp_changed)
            conn.wake.set()

    def publish_frames(self, frames: list[bytes]) -> None:
        for conn in self.connections.values():
            kept = (filter_frame(f, conn.subs.modes) for f in frames)
            conn.replayed.extend(f for f in kept if f)
            conn.wake.set()

    def frames_for(self, conn: TickerConnection) -> list[bytes]:
        if self.replay:
            frames, conn.replayed = conn.replayed, []
            return frames
        modes = self._mode_rows(conn)
        rows = np.flatnonzero(conn.dirty & (modes > 0))
        if rows.size == 0:
            return []
        conn.dirty[rows] = False
        row_modes = modes[rows]
        by_mode = {int(m): rows[row_modes == m] for m in np.unique(row_modes)}
        return [encode_frame(self.state.market.table, by_mode)]

    def apply(self, conn: TickerConnection, action: ClientAction) -> str | None:
        """Apply a client action; the text error to send back, if any."""
        market = self.state.market
        if action.action == "subscribe":
            added, refused = conn.subs.subscribe(action.tokens, market.rows)
            self._mark(conn, added)
            return TOO_MANY_TOKENS if refused else None
        if action.action == "unsubscribe":
            conn.subs.unsubscribe(action.tokens)
        else:
            self._mark(conn, conn.subs.set_mode(action.tokens, action.mode or 0))
        self._mode_rows(conn)
        return None

    def _mark(self, conn: TickerConnection, tokens: list[int]) -> None:
        """New subscriptions and mode changes get the current quote at the next send."""
        self._mode_rows(conn)
        rows = [self.state.market.rows[t] for t in tokens if t in self.state.market.rows]
        conn.dirty[rows] = True
        conn.wake.set()

    def snapshot(self) -> dict[str, Any]:
        per_key: dict[str, int] = {}
        for conn in self.connections.values():
            per_key[conn.api_key] = per_key.get(conn.api_key, 0) + 1
        subs = {str(c.id): {"api_key": c.api_key, "subscriptions": len(c.subs)} for c in self.connections.values()}
        return {"connections_per_key": per_key, "connections": subs}

    # --- per-connection tasks ----------------------------------------------------------------

    async def run_sender(self, conn: TickerConnection) -> None:
        while not conn.ws.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.wake.wait(), HEARTBEAT_INTERVAL_S)
            conn.wake.clear()
            if self.stalled():
                await asyncio.sleep(STALL_POLL_S)
                continue
            frames = self.frames_for(conn)
            for frame in frames:
                await self._send_tick_frame(conn, frame)
            if not frames and time.monotonic() - conn.last_sent >= HEARTBEAT_INTERVAL_S:
                await conn.send_bytes(HEARTBEAT)

    async def _send_tick_frame(self, conn: TickerConnection, frame: bytes) -> None:
        if self.state.faults.take("malformed_frames_next"):
            frame = garble_frame(frame)
        await conn.send_bytes(frame)
        if self.recorder is not None:
            self.recorder.write(self.state.clock.now(), frame)

    async def run_order_updates(self, conn: TickerConnection, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while not conn.ws.closed:
            payload = await queue.get()
            while self.stalled():
                await asyncio.sleep(STALL_POLL_S)
            await conn.send_json({"type": "order", "data": payload})

    async def receive(self, conn: TickerConnection) -> None:
        async for message in conn.ws:
            if message.type == WSMsgType.TEXT:
                await self._handle_text(conn, message.data)
            elif message.type == WSMsgType.BINARY:
                log.warning("ticker conn %s (%s): ignored a binary client frame", conn.id, conn.api_key)

    async def _handle_text(self, conn: TickerConnection, text: str) -> None:
        try:
            parsed = parse_client_message(text)
        except MalformedMessage as exc:
            log.warning("ticker conn %s (%s): dropping on malformed message: %s", conn.id, conn.api_key, exc)
            conn.abort()
            return
        if isinstance(parsed, str):
            log.warning("ticker conn %s (%s): ignored message (%s): %.200s", conn.id, conn.api_key, parsed, text)
            return
        error = self.apply(conn, parsed)
        if error:
            await conn.send_json({"type": "error", "data": error})


HUB_KEY: web.AppKey[TickerHub] = web.AppKey("kitesim_ticker_hub", TickerHub)


async def ticker_handler(request: web.Request) -> web.StreamResponse:
    """``GET /?api_key=..&access_token=..`` with ``Upgrade: websocket`` (any path)."""
    hub: TickerHub = request.app[HUB_KEY]
    api_key = request.query.get("api_key", "")
    access_token = request.query.get("access_token", "")
    refusal = hub.refusal(api_key, access_token)
    if refusal is not None:
        log.info("ticker upgrade refused for %r: %s", api_key, refusal.status)
        raise refusal
    conn = hub.register(api_key, access_token, request)
    try:
        await conn.ws.prepare(request)
        await _serve(hub, conn)
    finally:
        hub.unregister(conn)
    return conn.ws


async def _serve(hub: TickerHub, conn: TickerConnection) -> None:
    queue = hub.state.order_updates.subscribe(conn.api_key)
    tasks = [
        asyncio.create_task(_guarded(conn, hub.run_sender(conn))),
        asyncio.create_task(_guarded(conn, hub.run_order_updates(conn, queue))),
    ]
    try:
        await _guarded(conn, hub.receive(conn))
    finally:
        hub.state.order_updates.unsubscribe(conn.api_key, queue)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _guarded(conn: TickerConnection, work: Coroutine[Any, Any, None]) -> None:
    """The connection edge: a reset is the normal end of a dropped socket; anything else is logged."""
    try:
        await work
    except ConnectionResetError:
        conn.abort()
    except Exception:
        log.exception("ticker conn %s (%s) failed; closing it", conn.id, conn.api_key)
        conn.abort()
