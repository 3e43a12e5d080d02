"""``/ws/stream/``: live chains and tokens, snapshot then numbered deltas, conflated per connection.

Protocol (JSON text frames; README "Live stream"):
  client → {"action": "subscribe", "chain": "NIFTY:2026-12-01"}
           {"action": "subscribe", "tokens": [256265, ...]}
           {"action": "unsubscribe", "chain": ...} / {"action": "unsubscribe", "tokens": [...]}
           {"action": "snapshot", "chain": ...}            (after a gap in seq)
  server → {"type": "snapshot", "chain": ..., "seq": n, "rows": [...], ...chain fields}
           {"type": "delta", "seq": n, "rows": [...], "bars": {"<token>": [start, o, h, l, c, v]}}
                                                            (one per flush interval on average;
                                                            "bars" only when a forming bar changed)
           {"type": "error", "message": ..., "field": ...}    (the connection is kept)
A frame is checked whole before anything acts on it (ticks.stream_input); one over
STREAM_MAX_MESSAGE_BYTES is closed with 4413.
Auth: the Django session (dashboard) or an API key in the ``X-Api-Key`` header or the
``api_key`` query parameter (scripts); anything else is closed with 4401.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.conf import settings

from ticks.conflation import Conflator, SendBudget
from ticks.models import ClientApiKey
from ticks.snapshots import shared_snapshot
from ticks.stream import (
    ROWS_MESSAGE,
    ChainSubscription,
    StreamError,
    chain_subscription,
    delta_text,
    token_groups,
)
from ticks.stream_input import MessageTooLarge, StreamRequest, protocol_error_count, stream_request_parse

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_LARGE = 4413
FLUSH_BURST = 2.0


class StreamConsumer(AsyncWebsocketConsumer):
    serving = False  # authenticated: a frame sent before an unauthenticated close lands is ignored

    async def connect(self) -> None:
        if not await self._authenticated():
            # Accept first: a close before accept is a bare HTTP 403, and clients should see why.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED, reason="log in or send an API key")
            return
        self.conflator = Conflator()
        self.dirty = asyncio.Event()
        self.chains: dict[str, ChainSubscription] = {}
        self.tokens: set[int] = set()
        self.token_groups: set[str] = set()
        self.wanted: set[int] = set()  # the chains' tokens and the subscribed tokens
        self.sending_since: float | None = None  # loop time the send under way began
        await self.accept()
        self._server_send = _server_send(self.base_send)
        self.serving = True
        # ticks.channel_layer hands group messages over directly; another layer (the in-memory one of
        # tests) delivers them through the channel's queue and dispatch().
        receiver_set = getattr(self.channel_layer, "receiver_set", None)
        if receiver_set is not None:
            receiver_set(self.channel_name, self._rows_merge)
        self.flusher = asyncio.create_task(self._flush_loop())
        self.watchdog = asyncio.create_task(self._watch_sends())

    async def disconnect(self, code: int) -> None:
        await self._leave()
        receiver_discard = getattr(self.channel_layer, "receiver_discard", None)
        if receiver_discard is not None:
            receiver_discard(self.channel_name)
        watchdog = getattr(self, "watchdog", None)
        if watchdog is not None:
            watchdog.cancel()

    async def _leave(self) -> None:
        """Stop merging and sending."""
        flusher = getattr(self, "flusher", None)
        if flusher is not None:
            flusher.cancel()
        for group in self._groups():
            await self.channel_layer.group_discard(group, self.channel_name)
        self.chains, self.tokens, self.token_groups = {}, set(), set()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.serving:
            return
        try:
            await self._act(stream_request_parse(text_data, bytes_data))
        except MessageTooLarge as error:
            self._refused("message", str(error))
            self.serving = False
            await self._leave()
            await self.close(code=CLOSE_TOO_LARGE, reason=str(error))
        except StreamError as error:
            self._refused(error.field, error.message)
            await self._send({"type": "error", "message": error.message, "field": error.field})

    def _refused(self, field: str, message: str) -> None:
        logger.warning(
            "stream %s: refused a client message: %s (field %s)", self.channel_name, message, field
        )
        protocol_error_count(field)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Group messages that still come through the channel's queue (a connection joining or
        leaving) skip Channels' per-message database housekeeping: merging touches no database."""
        if message["type"] == ROWS_MESSAGE:
            self._rows_merge(message)
        else:
            await super().dispatch(message)

    def _rows_merge(self, event: dict[str, Any]) -> None:
        """Group message from the feed's fan-out hook, normally handed over by the channel layer
        itself (ticks.channel_layer), decoded once and shared with the process's other connections:
        merge only; the flush loop sends."""
        self.conflator.merge(
            event["tokens"],
            event["rows"],
            self.wanted,
            received_at=event.get("received_at"),
            bar_tokens=event.get("bar_tokens", ()),
            bars=event.get("bars", ()),
        )
        chain = event.get("chain")
        if chain in self.chains:
            self.conflator.merge_chain(chain, event.get("fields", {}))
        self.dirty.set()

    async def _act(self, request: StreamRequest) -> None:
        if request.chain is not None:
            await getattr(self, f"_{request.action}_chain")(request.chain)
        else:
            await getattr(self, f"_{request.action}_tokens")(request.tokens)

    async def _subscribe_chain(self, chain: str) -> None:
        if chain not in self.chains and len(self.chains) >= settings.STREAM_MAX_CHAINS:
            raise StreamError(f"at most {settings.STREAM_MAX_CHAINS} chains per connection", field="chain")
        subscription = await database_sync_to_async(chain_subscription)(chain)
        self.wanted |= subscription.tokens
        for group in subscription.groups - self._groups():
            await self.channel_layer.group_add(group, self.channel_name)
        self.chains[chain] = subscription
        await self._snapshot_chain(chain)

    async def _snapshot_chain(self, chain: str) -> None:
        if chain not in self.chains:
            raise StreamError(f"not subscribed to {chain!r}", field="chain")
        snapshot = await shared_snapshot(chain)
        await self._send({"type": "snapshot", "chain": chain, "seq": self.conflator.restart(), **snapshot})

    async def _unsubscribe_chain(self, chain: str) -> None:
        subscription = self.chains.pop(chain, None)
        if subscription is None:
            raise StreamError(f"not subscribed to {chain!r}", field="chain")
        for group in subscription.groups - self._groups():
            await self.channel_layer.group_discard(group, self.channel_name)
        self._rewant()

    async def _subscribe_tokens(self, wanted: frozenset[int]) -> None:
        if len(self.tokens | wanted) > settings.STREAM_MAX_TOKENS:
            raise StreamError(f"at most {settings.STREAM_MAX_TOKENS} tokens per connection", field="tokens")
        groups = await database_sync_to_async(token_groups)(sorted(wanted))
        for group in groups - self._groups():
            await self.channel_layer.group_add(group, self.channel_name)
        self.tokens |= wanted
        self.token_groups |= groups
        self.wanted |= wanted

    async def _unsubscribe_tokens(self, tokens: frozenset[int]) -> None:
        self.tokens -= tokens
        self._rewant()

    def _rewant(self) -> None:
        self.wanted = self.tokens.union(*(subscription.tokens for subscription in self.chains.values()))

    def _groups(self) -> set[str]:
        chains = getattr(self, "chains", {})
        return set(getattr(self, "token_groups", set())).union(*(sub.groups for sub in chains.values()))

    async def _flush_loop(self) -> None:
        """Send what is pending as soon as the budget allows (ticks.conflation.SendBudget); a newer
        frame may allow it sooner, so a wait ends when one is merged. A frame is one message per
        chain (ticks.fanout), so nothing waits to gather here."""
        loop = asyncio.get_running_loop()
        budget = SendBudget(settings.STREAM_FLUSH_MS / 1000, FLUSH_BURST, wall_at=loop.time())
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            delay = budget.wait(loop.time(), self.conflator.newest_received_at)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.dirty.wait(), delay)
                self.dirty.set()  # still pending: ask the budget again
                continue
            delta = self.conflator.take()
            if delta is not None:
                budget.spend()
                await self._send_text(delta_text(delta))

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_text(json.dumps(message))

    async def _send_text(self, text: str) -> None:
        self.sending_since = asyncio.get_running_loop().time()
        try:
            await self._server_send({"type": "websocket.send", "text": text})
        finally:
            self.sending_since = None

    async def _watch_sends(self) -> None:
        """Drop the client whose send has been blocked for STREAM_SLOW_CLIENT_S (it stopped reading).
        One timer per connection every quarter of that, not one per send: at 500 connections a
        timeout around every send was 8 % of the web process's CPU (py-spy under bench/fanout.py)."""
        limit = settings.STREAM_SLOW_CLIENT_S
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(limit / 4)
            since = self.sending_since
            if since is not None and loop.time() - since >= limit:
                break
        logger.warning("stream %s: client too slow to receive for %.0f s, closing", self.channel_name, limit)
        await self._leave()
        await self.close(code=CLOSE_TOO_SLOW, reason="client too slow to receive")

    async def _authenticated(self) -> bool:
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            return True
        key = _api_key(self.scope)
        return key is not None and await database_sync_to_async(_key_valid)(key)


def _server_send(
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """The ASGI server's send under Channels' session wrapper, which on every message looks at the
    session to save it with an HTTP response; a WebSocket frame never is one (4 % of the web's CPU at
    500 connections with bench/fanout.py)."""
    wrapper = getattr(send, "__self__", None)
    return wrapper.real_send if isinstance(wrapper, InstanceSessionWrapper) else send


def _api_key(scope: dict[str, Any]) -> str | None:
    headers = dict(scope.get("headers", []))
    if b"x-api-key" in headers:
        return headers[b"x-api-key"].decode()
    values = parse_qs(scope.get("query_string", b"").decode()).get("api_key")
    return values[0] if values else None


def _key_valid(key: str) -> bool:
    try:
        api_key = ClientApiKey.objects.get_from_key(key)
    except ClientApiKey.DoesNotExist:
        return False
    return not api_key.has_expired and api_key.user.is_active
