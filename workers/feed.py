"""One broker account's feed, run inside a long-lived Celery task on the ``feeds`` queue.

A feed holds ``lease:feed:<account>`` for as long as it streams; it stops when the lease is lost,
the account is disabled or its token is rejected, a stop arrives on the control channel, or the
worker shuts down. While alive it applies every new plan version make-before-break and reports
what each connection actually carries, for the reconciler.
"""

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from celery import current_app
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone
from redis.asyncio import Redis
from redis.exceptions import RedisError
from structlog.contextvars import bound_contextvars

from greeks.hook import GreeksHook
from orders.services import order_update_enqueue
from ticks.bars.hook import BarsHook
from ticks.fanout import StreamFanoutHook
from ticks.feeds import metrics
from ticks.feeds.connection import ConnectionSettings, Credentials, TokenRejected
from ticks.feeds.latest import LatestTickCache
from ticks.feeds.lease import FeedLease
from ticks.feeds.pipeline import FrameHook, FrameProcessor
from ticks.feeds.pool import AccountPool
from ticks.feeds.rebalance import AtmWatch, Crossing, FirstTickProbe, bands_read, rebalance_ask
from ticks.feeds.recording import FrameRecorder
from ticks.feeds.redis_io import feed_redis
from ticks.models import BrokerAccount
from ticks.services import broker_account_mark_health
from workers.control import CONTROL_CHANNEL, feed_starting_key, feed_status_key
from workers.selectors import feed_connection_plan

logger = logging.getLogger(__name__)


async def feed_run(account_id: int, stop: asyncio.Event, *, worker: str = "") -> str:
    """Stream one account until told to stop; returns why it stopped."""
    with bound_contextvars(account_id=account_id):  # on every line of the feed (README "Logs")
        return await _feed_run(account_id, stop, worker)


async def _feed_run(account_id: int, stop: asyncio.Event, worker: str) -> str:
    redis = feed_redis(settings.REDIS_URL)
    lease = FeedLease(redis, account_id, ttl_ms=settings.FEED_LEASE_TTL_MS)
    try:
        if not await lease.acquire():
            return "lease_held"
        await redis.delete(feed_starting_key(account_id))
        try:
            return await FeedSession(account_id, redis, lease, worker).run(stop)
        finally:
            await lease.release()
    finally:
        await redis.aclose()


class FeedSession:
    def __init__(self, account_id: int, redis: Redis, lease: FeedLease, worker: str) -> None:
        self.account_id = account_id
        self.worker = worker
        self.redis = redis
        self.lease = lease
        self.plan_version = 0
        self.reason = "stopped"
        self._background: set[asyncio.Task[Any]] = set()

    async def run(self, stop: asyncio.Event) -> str:
        account = await _account(self.account_id)
        self.label = account.name
        self.recorder = _recorder(account.name)
        self.pool = self._pool(account)
        await self._apply_plan()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._keep_lease(stop))
                group.create_task(self._listen(stop))
                group.create_task(self._report(stop))
                group.create_task(self.pool.run(stop))
        except* TokenRejected as rejected:
            await _mark(self.account_id, BrokerAccount.Health.TOKEN_EXPIRED, str(rejected.exceptions[0]))
            self.reason = "token_rejected"
        finally:
            await self.bars.aclose()  # the closed bars get written; the forming ones are partial
        await self.redis.delete(feed_status_key(self.account_id))
        if self.recorder is not None:
            self.recorder.close()
        return self.reason

    def _pool(self, account: BrokerAccount) -> AccountPool:
        return AccountPool(
            account=account.name,
            max_connections=account.max_connections,
            tokens_per_connection=account.tokens_per_connection,
            settings=ConnectionSettings(ws_root=settings.KITE_WS_ROOT, watchdog_s=settings.FEED_WATCHDOG_S),
            credentials=lambda: _credentials(self.account_id),
            on_frame=FrameProcessor(account.name, hooks=self._hooks(), recorder=self.recorder),
            on_text=self._on_text,
            on_reconnect=lambda reason: metrics.RECONNECTS.labels(account.name, reason).inc(),
        )

    def _hooks(self) -> list[FrameHook]:
        """In order: the ATM bands (a crossing asks for a re-plan before anything else runs), the
        re-plan's timing, latest ticks, greeks on them, bars, then the fan-out of all three to browsers."""
        greeks = GreeksHook(self.redis)
        self.bars = BarsHook(self.label)
        self.watch = AtmWatch(self._on_crossing)
        self.probe = FirstTickProbe(self.redis, self.label)
        fanout = StreamFanoutHook(get_channel_layer(), greeks)
        return [self.watch, self.probe, LatestTickCache(self.redis), greeks, self.bars, fanout]

    async def _apply_plan(self, crossed_at: float | None = None) -> None:
        plan = await sync_to_async(feed_connection_plan)(account_id=self.account_id)
        before = {token for connection in self.pool.connections for token in connection.wanted}
        self.bars.set_primary(plan.primary)  # before the new tokens' first ticks
        if crossed_at is not None:
            added = {token for tokens in plan.connections.values() for token in tokens} - before
            if added:
                self.probe.expect(plan.version, crossed_at, added)
        await self.pool.apply(plan.connections)
        self.plan_version = plan.version
        self.watch.watch(await bands_read(self.redis))
        metrics.PLANNED.labels(self.label).set(sum(len(tokens) for tokens in plan.connections.values()))

    async def _on_crossing(self, crossing: Crossing) -> None:
        await rebalance_ask(self.redis, crossing, self._send_rebalance)

    async def _send_rebalance(self, kwargs: dict[str, Any]) -> None:
        """Publishing to the broker blocks: in a thread, off the frame path."""
        self._background_run(asyncio.to_thread(current_app.send_task, "feeds.rebalance", kwargs=kwargs))

    def _background_run(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _keep_lease(self, stop: asyncio.Event) -> None:
        valid_until = time.monotonic() + settings.FEED_LEASE_TTL_MS / 1000
        while not await _wait(stop, settings.FEED_LEASE_RENEW_S):
            sent = time.monotonic()
            if not await _renewed(self.lease, timeout=valid_until - sent):
                self._stop(stop, "lease_lost")
                return
            valid_until = sent + settings.FEED_LEASE_TTL_MS / 1000
            if not await _enabled(self.account_id):
                self._stop(stop, "disabled")

    async def _listen(self, stop: asyncio.Event) -> None:
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(CONTROL_CHANNEL)
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    await self._on_control(json.loads(message["data"]), stop)

    async def _on_control(self, command: dict[str, Any], stop: asyncio.Event) -> None:
        if command.get("action") == "plan" and command.get("version", 0) > self.plan_version:
            await self._apply_plan(command.get("crossed_at"))
        elif command.get("action") == "bands":
            self.watch.watch(await bands_read(self.redis))
        elif command.get("action") == "stop" and self._addressed(command):
            self._stop(stop, "stop_requested")

    def _addressed(self, command: dict[str, Any]) -> bool:
        if "account" in command:
            return command["account"] == self.account_id
        if "worker" in command:
            return command["worker"] == self.worker
        return True

    async def _report(self, stop: asyncio.Event) -> None:
        while True:
            subscriptions = self.pool.subscriptions()
            status = {
                "holder": self.lease.holder,
                "plan_version": self.plan_version,
                "connections": subscriptions,
                "last_frame_at": max((c.last_frame_at for c in self.pool.connections), default=0.0),
                "reported_at": timezone.now().timestamp(),
            }
            metrics.SUBSCRIBED.labels(self.label).set(sum(len(tokens) for tokens in subscriptions.values()))
            await self.redis.set(
                feed_status_key(self.account_id), json.dumps(status), px=settings.FEED_LEASE_TTL_MS
            )
            if await _wait(stop, settings.FEED_REPORT_S):
                return

    def _on_text(self, message: dict[str, Any]) -> None:
        kind = str(message.get("type", "unknown"))
        metrics.TEXT_MESSAGES.labels(self.label, kind).inc()
        if kind == "order" and isinstance(message.get("data"), dict):
            # Enqueue orders.apply_kite_update in a thread: publishing to the broker blocks.
            self._background_run(
                asyncio.to_thread(order_update_enqueue, account_id=self.account_id, payload=message["data"])
            )
        elif kind == "error":
            logger.warning("%s: Kite error message: %s", self.label, message.get("data"))
        else:
            logger.info("%s: Kite %s message: %.200s", self.label, kind, message.get("data"))

    def _stop(self, stop: asyncio.Event, reason: str) -> None:
        logger.info("%s: feed stopping (%s)", self.label, reason)
        self.reason = reason
        stop.set()


def _recorder(account: str) -> FrameRecorder | None:
    if settings.FEED_RECORD_DIR is None:
        return None
    directory = Path(settings.FEED_RECORD_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return FrameRecorder(directory / f"{account}-{int(time.time())}.frames")


async def _renewed(lease: FeedLease, *, timeout: float) -> bool:
    """Renewed before the lease could have lapsed: a feed that cannot prove it still holds its lease (Redis
    unreachable, a host cut off) stops before a successor can take it, so no account streams twice."""
    try:
        return await asyncio.wait_for(lease.renew(), timeout=max(timeout, 0.0))
    except (TimeoutError, RedisError):
        return False


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless stopped first; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


@sync_to_async
def _account(account_id: int) -> BrokerAccount:
    return BrokerAccount.objects.get(pk=account_id)


@sync_to_async
def _credentials(account_id: int) -> Credentials:
    account = BrokerAccount.objects.get(pk=account_id)  # the current token, at every (re)connect
    return Credentials(api_key=account.api_key, access_token=account.access_token)


@sync_to_async
def _enabled(account_id: int) -> bool:
    return BrokerAccount.objects.filter(pk=account_id, enabled=True).exists()


@sync_to_async
def _mark(account_id: int, health: BrokerAccount.Health, reason: str) -> None:
    account = BrokerAccount.objects.get(pk=account_id)
    broker_account_mark_health(account=account, health=health, reason=reason, at=timezone.now())
