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
Auth: the Django session (dashboard), a single-use ``?ticket=`` (ticks.stream_tickets) or an API key
in the ``X-Api-Key`` header (scripts); anything else, an ``api_key`` in the URL included, is closed
with 4401. Past a connection cap (ticks.stream_slots) 4429; Redis out of reach at connect 4503.

Everything the connection sends goes through one flush task: replies (snapshots, at most one
pending per chain, and errors) first, then deltas, and nothing while the socket holds
STREAM_SEND_BUFFER_BYTES the client has not taken (ticks.stream_socket). A client that takes
nothing for STREAM_SLOW_CLIENT_S is closed with 4408, which then still fits in the socket.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import redis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.conf import settings

from ticks.conflation import Conflator, Delta, SendBudget
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
from ticks.stream_metrics import SLOW_CLIENT_DROPS, STREAM_CLIENTS, STREAM_TALLY
from ticks.stream_slots import slot_keys, slot_release, slot_take, stream_redis
from ticks.stream_socket import Backlog, DirectSend, Transport, backlog_meter, direct_send_of, transport_of
from ticks.stream_tickets import (
    StreamHolder,
    stream_holder_active,
    stream_holder_of_key,
    stream_ticket_redeem,
)

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_LARGE = 4413
CLOSE_TOO_MANY = 4429
CLOSE_UNAVAILABLE = 4503
FLUSH_BURST = 2.0
# Error replies waiting for a client that does not read them; past this, more are only logged.
PENDING_ERRORS_MAX = 8
DRAIN_POLL_S = 0.05  # how often a connection at its send bound looks whether the client took some
CLOSE_SEND_S = 1.0  # a close frame that cannot even be written in this long: the socket is reset
# uvicorn waits 10 s for the client's reply to a close; a socket still full after this is reset, so a
# client that never reads again holds nothing of the server's for long.
RESET_AFTER_CLOSE_S = 15.0
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
UNAVAILABLE = "stream unavailable, retry shortly"
API_KEY_IN_URL = "api_key in the URL is refused: use ?ticket= (POST /api/v1/stream/tickets) or X-Api-Key"


class StreamConsumer(AsyncWebsocketConsumer):
    serving = False  # admitted and not closing: a frame sent before a refusal's close lands is ignored
    slot: list[str] | None = None  # the cap sets holding this connection (ticks.stream_slots)
    counted = False  # in stream_clients
    transport: Transport | None = None
    idle = False  # the flush task waits for something to send, with nothing in hand

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except REDIS_DOWN as error:
            if getattr(self, "channel_name", None) is not None:
                raise  # mid-connection: uvicorn logs it and drops the connection
            # The channel layer could not subscribe the connection's channel: refused, not a bare 500.
            logger.warning("stream: Redis out of reach at connect: %s", error)
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE, "reason": UNAVAILABLE})
        finally:
            # However the connection ended: a dispatched disconnect, or a send that met a client
            # already gone (ClientDisconnected out of dispatch, when no disconnect is dispatched).
            await self._release()

    async def connect(self) -> None:
        refusal = await self._admit()
        # Accept first: a close before accept is a bare HTTP 403, and clients should see why.
        await self.accept()
        if refusal is not None:
            await self.close(code=refusal[0], reason=refusal[1])
            return
        self.conflator = Conflator()
        self.dirty = asyncio.Event()
        self.chains: dict[str, ChainSubscription] = {}
        self.tokens: set[int] = set()
        self.token_groups: set[str] = set()
        self.wanted: set[int] = set()  # the chains' tokens and the subscribed tokens
        self.replies: dict[str, dict[str, Any] | None] = {}  # "snapshot:<chain>" (read when sent) or errors
        self.replied = 0
        self.stalled_since: float | None = None  # loop time the client stopped taking what is sent
        self._server_send = _server_send(self.base_send)
        self.transport = transport_of(self._server_send)
        self.backlog: Backlog | None = None if self.transport is None else backlog_meter(self.transport)
        self.direct: DirectSend | None = direct_send_of(self._server_send)
        self.loop = asyncio.get_running_loop()
        self.budget = SendBudget(settings.STREAM_FLUSH_MS / 1000, FLUSH_BURST, wall_at=self.loop.time())
        self.serving = True
        self.counted = True
        STREAM_CLIENTS.inc()
        # ticks.channel_layer hands group messages over directly; another layer (the in-memory one of
        # tests) delivers them through the channel's queue and dispatch().
        receiver_set = getattr(self.channel_layer, "receiver_set", None)
        if receiver_set is not None:
            receiver_set(self.channel_name, self._rows_merge)
        self.flusher = asyncio.create_task(self._flush_loop())
        self.watchdog = asyncio.create_task(self._watch_sends())
        self.keeper = asyncio.create_task(self._keep_slot())

    async def _admit(self) -> tuple[int, str] | None:
        """None when this connection may stream (its slot taken), else the close code and reason."""
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if "api_key" in query:  # it would be in every access log on the way (issue 17)
            return CLOSE_UNAUTHENTICATED, API_KEY_IN_URL
        try:
            holder = await self._holder(query)
            if holder is None:
                return CLOSE_UNAUTHENTICATED, "log in, or connect with ?ticket= or an X-Api-Key header"
            keys = slot_keys(holder.cap_name, _address(self.scope))
            full = await slot_take(stream_redis(), self.channel_name, keys)
        except REDIS_DOWN as error:
            # Refused rather than let in uncounted: the stream's data comes through the same Redis.
            logger.warning("stream %s: Redis out of reach at connect: %s", self.channel_name, error)
            return CLOSE_UNAVAILABLE, UNAVAILABLE
        if full is not None:
            logger.warning("stream %s: refused for %s: %s", self.channel_name, holder.cap_name, full)
            return CLOSE_TOO_MANY, full
        self.slot = keys
        return None

    async def _holder(self, query: dict[str, list[str]]) -> StreamHolder | None:
        if "ticket" in query:
            holder = await stream_ticket_redeem(stream_redis(), query["ticket"][0])
            active = holder is not None and await database_sync_to_async(stream_holder_active)(holder)
            return holder if active else None
        key = dict(self.scope.get("headers", [])).get(b"x-api-key")
        if key is not None:
            return await database_sync_to_async(stream_holder_of_key)(key.decode("latin-1"))
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            return StreamHolder(user.pk, None)
        return None

    async def _stop(self) -> None:
        """Stop merging and sending: the connection is closing."""
        self.serving = False
        flusher = getattr(self, "flusher", None)
        if flusher is not None:
            flusher.cancel()
        release = getattr(self.channel_layer, "channel_release", None)
        if release is not None:
            await release(self.channel_name)
            return
        for group in self._groups():
            await self.channel_layer.group_discard(group, self.channel_name)
        self.chains, self.tokens, self.token_groups = {}, set(), set()

    async def _release(self) -> None:
        """Everything the connection held: tasks, channel, groups, its slot under the caps."""
        for name in ("watchdog", "keeper"):
            task = getattr(self, name, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if getattr(self, "channel_name", None) is not None:  # set once the channel layer gave one
            await self._stop()
        if self.counted:
            self.counted = False
            STREAM_CLIENTS.dec()
            STREAM_TALLY.flush(asyncio.get_running_loop().time())
        slot, self.slot = self.slot, None
        if slot is not None:
            try:
                await slot_release(stream_redis(), self.channel_name, slot)
            except REDIS_DOWN as error:
                logger.warning(
                    "stream %s: slot not released (lapses by itself): %s", self.channel_name, error
                )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.serving:
            return
        try:
            await self._act(stream_request_parse(text_data, bytes_data))
        except MessageTooLarge as error:
            self._refused("message", str(error))
            await self._stop()
            await self.close(code=CLOSE_TOO_LARGE, reason=str(error))
        except StreamError as error:
            self._refused(error.field, error.message)
            self._reply_error(error)

    def _refused(self, field: str, message: str) -> None:
        logger.warning(
            "stream %s: refused a client message: %s (field %s)", self.channel_name, message, field
        )
        protocol_error_count(field)

    def _reply_error(self, error: StreamError) -> None:
        """Queue the error for the flush task; a client that sends faster than it reads is not
        answered past PENDING_ERRORS_MAX (each refusal is logged and counted all the same)."""
        if sum(key.startswith("error:") for key in self.replies) >= PENDING_ERRORS_MAX:
            return
        self.replied += 1
        self.replies[f"error:{self.replied}"] = {
            "type": "error",
            "message": error.message,
            "field": error.field,
        }
        self.dirty.set()

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
            published_at=event.get("published_at"),
        )
        chain = event.get("chain")
        if chain in self.chains:
            self.conflator.merge_chain(chain, event.get("fields", {}))
        if not (self.idle and self.serving and not self.dirty.is_set() and self._send_now()):
            self.dirty.set()

    def _send_now(self) -> bool:
        """Write the delta of the message just merged, here in the channel layer's callback, when
        the flush task has nothing in hand (``idle``, not woken: no reply or delta pending before
        this message), the budget allows it and the socket is under its bound; False to leave it to
        the flush task. Same budget, same numbering, the same frame as the flush task would send."""
        direct, backlog = self.direct, self.backlog
        if direct is None or not direct.ready():
            return False
        if self.budget.wait(self.loop.time(), self.conflator.newest_received_at) > 0:
            return False
        if backlog is not None and backlog() >= settings.STREAM_SEND_BUFFER_BYTES:
            return False
        delta = self.conflator.take()
        if delta is not None:
            self.budget.spend()
            direct.send_text(delta_text(delta))
            self._sent(delta)
        return True

    def _sent(self, delta: Delta) -> None:
        published_at = delta.published_at
        lag = None if published_at is None else time.time() - published_at
        STREAM_TALLY.delta_sent(lag, delta.conflated, self.loop.time())

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
        """One pending snapshot per chain however often it is asked for: it is read when sent."""
        if chain not in self.chains:
            raise StreamError(f"not subscribed to {chain!r}", field="chain")
        self.replies.setdefault(f"snapshot:{chain}", None)
        self.dirty.set()

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
        try:
            await self._flush()
        except OSError:  # uvicorn's ClientDisconnected: the client is gone and the consumer ends with it
            return

    async def _flush(self) -> None:
        """Send replies first, then what is pending as soon as the budget allows
        (ticks.conflation.SendBudget); a newer frame may allow it sooner, so a wait ends when one is
        merged. A frame is one message per chain (ticks.fanout), so nothing waits to gather here."""
        loop, budget = self.loop, self.budget
        while True:
            self.idle = True
            try:
                await self.dirty.wait()
            finally:
                self.idle = False
            self.dirty.clear()
            await self._drained()
            if self.replies:
                await self._send_reply()
                self.dirty.set()
                continue
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
                self._sent(delta)

    async def _send_reply(self) -> None:
        key, message = next(iter(self.replies.items()))
        del self.replies[key]
        if message is None:
            message = await self._snapshot(key.partition(":")[2])
        if message is not None:
            await self._send(message)

    async def _snapshot(self, chain: str) -> dict[str, Any] | None:
        """The chain's snapshot message, numbered; None when it was unsubscribed meanwhile."""
        if chain not in self.chains:
            return None
        try:
            snapshot = await shared_snapshot(chain)
        except StreamError as error:
            return {"type": "error", "message": error.message, "field": error.field}
        if chain not in self.chains:
            return None
        return {"type": "snapshot", "chain": chain, "seq": self.conflator.restart(), **snapshot}

    async def _drained(self) -> None:
        """Wait while the socket holds STREAM_SEND_BUFFER_BYTES the client has not taken, so a close
        frame still fits when the watchdog gives up on it (ticks.stream_socket)."""
        backlog, limit = self.backlog, settings.STREAM_SEND_BUFFER_BYTES
        if backlog is None or backlog() < limit:
            return
        self.stalled_since = asyncio.get_running_loop().time()
        try:
            while backlog() >= limit:
                await asyncio.sleep(DRAIN_POLL_S)
        finally:
            self.stalled_since = None

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_text(json.dumps(message))

    async def _send_text(self, text: str) -> None:
        self.stalled_since = asyncio.get_running_loop().time()
        try:
            await self._server_send({"type": "websocket.send", "text": text})
        finally:
            self.stalled_since = None

    async def _watch_sends(self) -> None:
        """Drop the client that has taken nothing for STREAM_SLOW_CLIENT_S (it stopped reading).
        One timer per connection every quarter of that, not one per send: at 500 connections a
        timeout around every send was 8 % of the web process's CPU (py-spy under bench/fanout.py)."""
        limit = settings.STREAM_SLOW_CLIENT_S
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(limit / 4)
            since = self.stalled_since
            if since is not None and loop.time() - since >= limit:
                break
        logger.warning("stream %s: client took nothing for %g s, closing", self.channel_name, limit)
        SLOW_CLIENT_DROPS.inc()
        await self._stop()
        await self._close_or_reset(CLOSE_TOO_SLOW, "client too slow to receive")

    async def _close_or_reset(self, code: int, reason: str) -> None:
        """Close with ``code``; the socket is reset when even the close frame cannot be written, or
        when the client has not read up to it RESET_AFTER_CLOSE_S later."""
        try:
            await asyncio.wait_for(self.close(code=code, reason=reason), CLOSE_SEND_S)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()
            return
        if self.transport is not None:
            asyncio.get_running_loop().call_later(RESET_AFTER_CLOSE_S, self.transport.abort)

    async def _keep_slot(self) -> None:
        """Renew the connection's slot under the caps, so it lapses only when this process is gone."""
        if self.slot is None:
            return
        while True:
            await asyncio.sleep(settings.STREAM_SLOT_TTL_S / 3)
            try:
                full = await slot_take(stream_redis(), self.channel_name, self.slot)
            except REDIS_DOWN as error:
                logger.warning("stream %s: slot not renewed: %s", self.channel_name, error)
                continue
            if full is not None:  # its slot had lapsed (Redis restarted) and others took the room: kept
                logger.warning("stream %s: over the cap after its slot lapsed: %s", self.channel_name, full)


def _address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _server_send(
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """The ASGI server's send under Channels' session wrapper, which on every message looks at the
    session to save it with an HTTP response; a WebSocket frame never is one (4 % of the web's CPU at
    500 connections with bench/fanout.py)."""
    wrapper = getattr(send, "__self__", None)
    return wrapper.real_send if isinstance(wrapper, InstanceSessionWrapper) else send
