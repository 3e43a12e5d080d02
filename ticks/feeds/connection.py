"""One Kite ticker WebSocket: connect, (re)subscribe, read frames, reconnect, watch for silence.

The connection knows nothing of Django or Redis: it reads the *current* access token through
``credentials`` at every (re)connect, hands binary frames to ``on_frame`` and routes text
messages to ``on_text``. A 403 on the upgrade raises :class:`TokenRejected` out of ``run`` so the
pool can mark the account and stop hammering Kite.
"""

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from structlog.contextvars import bound_contextvars
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ticks.feeds.backoff import backoff_delays
from ticks.feeds.metrics import CONNECTIONS

logger = logging.getLogger(__name__)

MODES = ("ltp", "quote", "full")
SUBSCRIBE_BATCH = 500  # tokens per subscribe message; Kite accepts larger, smaller keeps frames small
MAX_FRAME_BYTES = 4 * 1024 * 1024  # a full 3000-token frame is ~560 kB


class TokenRejected(Exception):
    """Kite answered the upgrade with 403: the access token is wrong or expired."""


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str
    access_token: str


@dataclass
class ConnectionSettings:
    ws_root: str
    watchdog_s: float = 5.0  # Kite sends a heartbeat every ~1-2 s when idle
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    open_timeout_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)


FrameHandler = Callable[[bytes, float], Awaitable[None]]
TextHandler = Callable[[dict[str, Any]], None]


class FeedConnection:
    """A Kite WebSocket that keeps ``wanted`` (token -> mode) subscribed across reconnects."""

    def __init__(
        self,
        *,
        index: int,
        settings: ConnectionSettings,
        credentials: Callable[[], Awaitable[Credentials]],
        on_frame: FrameHandler,
        on_text: TextHandler,
        on_reconnect: Callable[[str], None] = lambda reason: None,
        account: str = "",
    ) -> None:
        self.index = index
        self.wanted: dict[int, str] = {}
        self.last_frame_at = 0.0
        self.connected = False
        self._settings = settings
        self._credentials = credentials
        self._on_frame = on_frame
        self._on_text = on_text
        self._on_reconnect = on_reconnect
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._open_gauge = CONNECTIONS.labels(account)

    async def update(self, *, subscribe: Mapping[int, str], unsubscribe: Iterable[int]) -> None:
        """Change what this connection carries; sent at once when connected, else on connect."""
        dropped = [token for token in unsubscribe if self.wanted.pop(token, None) is not None]
        self.wanted.update(subscribe)
        if self._ws is None:
            return
        async with self._send_lock:
            await _send_subscriptions(self._ws, subscribe)
            if dropped:
                await _send_batches(self._ws, "unsubscribe", dropped)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set. Raises TokenRejected on a 403."""
        delays = backoff_delays(
            base_s=self._settings.backoff_base_s, cap_s=self._settings.backoff_cap_s, rng=self._settings.rng
        )
        with bound_contextvars(feed_connection=self.index):  # on each line it logs (README "Logs")
            while not stop.is_set():
                reason = await self._connect_once(stop)
                if stop.is_set():
                    return
                self._on_reconnect(reason)
                await _sleep_unless(stop, next(delays))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def _connect_once(self, stop: asyncio.Event) -> str:
        """One connection's lifetime; returns why it ended."""
        credentials = await self._credentials()
        url = (
            f"{self._settings.ws_root}?api_key={credentials.api_key}&access_token={credentials.access_token}"
        )
        try:
            async with connect(
                url,
                additional_headers={"X-Kite-Version": "3"},
                open_timeout=self._settings.open_timeout_s,
                ping_interval=None,  # the watchdog on Kite's heartbeats detects dead sockets
                compression=None,
                max_size=MAX_FRAME_BYTES,
                proxy=None,
            ) as ws:
                return await self._session(ws, stop)
        except InvalidStatus as error:
            if error.response.status_code == 403:
                raise TokenRejected(f"connection {self.index}: upgrade answered 403") from error
            logger.warning("connection %d: upgrade answered %d", self.index, error.response.status_code)
            return f"http_{error.response.status_code}"
        except (OSError, TimeoutError) as error:
            logger.warning("connection %d: cannot connect: %s", self.index, error)
            return "connect_failed"

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> str:
        async with self._send_lock:
            await _send_subscriptions(ws, self.wanted)
            self._ws, self.connected = ws, True
        self._open_gauge.inc()
        try:
            return await self._read(ws, stop)
        finally:
            self._ws, self.connected = None, False
            self._open_gauge.dec()

    async def _read(self, ws: ClientConnection, stop: asyncio.Event) -> str:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                received = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait(
                    {received, stopping},
                    timeout=self._settings.watchdog_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping in done:
                    received.cancel()
                    return "stopped"
                if not done:
                    received.cancel()
                    logger.warning(
                        "connection %d: silent for %.1f s, reconnecting",
                        self.index,
                        self._settings.watchdog_s,
                    )
                    return "silent"
                try:
                    message = received.result()
                except ConnectionClosed as closed:
                    logger.warning("connection %d: closed (%s)", self.index, closed)
                    return "closed"
                await self._dispatch(message)
        finally:
            stopping.cancel()

    async def _dispatch(self, message: bytes | str) -> None:
        self.last_frame_at = time.time()
        if isinstance(message, bytes):
            await self._on_frame(message, self.last_frame_at)
            return
        try:
            payload = json.loads(message)
        except ValueError:
            logger.warning("connection %d: text message is not JSON: %.200r", self.index, message)
            payload = {"type": "invalid", "data": message}
        self._on_text(payload if isinstance(payload, dict) else {"type": "invalid", "data": payload})


async def _send_subscriptions(ws: ClientConnection, tokens: Mapping[int, str]) -> None:
    """Subscribe, then set each mode group (Kite's default after subscribe is ``quote``)."""
    if not tokens:
        return
    await _send_batches(ws, "subscribe", list(tokens))
    for mode in MODES:
        group = [token for token, wanted in tokens.items() if wanted == mode]
        for start in range(0, len(group), SUBSCRIBE_BATCH):
            await ws.send(json.dumps({"a": "mode", "v": [mode, group[start : start + SUBSCRIBE_BATCH]]}))


async def _send_batches(ws: ClientConnection, action: str, tokens: list[int]) -> None:
    for start in range(0, len(tokens), SUBSCRIBE_BATCH):
        await ws.send(json.dumps({"a": action, "v": tokens[start : start + SUBSCRIBE_BATCH]}))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
