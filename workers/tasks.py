import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.signals import before_task_publish, worker_ready
from celery.worker.consumer import Consumer
from django.conf import settings

from ticks import services as ticks_services
from ticks.clocks import market_now
from workers import readiness, services
from workers.feed import feed_run

logger = logging.getLogger(__name__)


# A feed streams until its lease, its token (06:00 IST) or its worker ends it. Celery reads a task's
# None time limit as "the global one" (CELERY_TASK_SOFT_TIME_LIMIT, 60 s), which stopped every feed
# each minute: so the limit is explicit, and only a backstop.
FEED_TIME_LIMIT_S = 2 * 24 * 3600


@shared_task(
    bind=True,
    name="workers.feed",
    acks_late=False,  # the supervisor restarts feeds; redelivery would start a duplicate
    soft_time_limit=FEED_TIME_LIMIT_S,
    time_limit=FEED_TIME_LIMIT_S + 60,
    ignore_result=True,
)
def feed(self: Task, account_id: int) -> str:
    """Stream one broker account until its lease is lost, it is disabled, or its worker stops."""
    reason = asyncio.run(feed_run(account_id, asyncio.Event(), worker=self.request.hostname or ""))
    logger.info("feed for account %d ended: %s", account_id, reason)
    return reason


@shared_task(name="feeds.supervise", ignore_result=True, soft_time_limit=10, time_limit=20)
def feed_supervise() -> list[int]:
    """Beat, every ~5 s: start a feed for every healthy account without a live lease."""
    return services.feed_supervise(client=services.redis_client())


@shared_task(name="feeds.rebalance", ignore_result=True, soft_time_limit=20, time_limit=40)
def feed_rebalance(
    reason: str = "beat backstop", crossed_at: float | None = None, market_at: float | None = None
) -> int:
    """Re-plan the fleet: asked by a feed whose underlying left its ATM band, and by beat (every ~5 s)
    as the backstop that also follows account health and watch-spec changes."""
    client = services.redis_client()
    return services.feed_rebalance(
        client=client, reason=reason, crossed_at=crossed_at, market_at=market_at
    ).version


@shared_task(name="feeds.reconcile", ignore_result=True, soft_time_limit=20, time_limit=40)
def feed_reconcile() -> int:
    """Beat, every ~15 s: push the plan again to feeds whose subscriptions drifted from it."""
    return len(services.feed_reconcile(client=services.redis_client(), now=time.time()))


@shared_task(name="feeds.preopen_plan", ignore_result=True, soft_time_limit=20, time_limit=40)
def feed_preopen_plan(reason: str = "preopen_plan") -> int:
    """09:00 IST on a session: plan the day from the previous close before the first tick."""
    return services.feed_rebalance(client=services.redis_client(), reason=reason).version


@shared_task(name="feeds.expiry_roll", ignore_result=True, soft_time_limit=20, time_limit=40)
def feed_expiry_roll(reason: str = "expiry_roll") -> int:
    """15:30 IST on a session: expired chains leave the plan and the next expiries take their place."""
    return services.feed_rebalance(client=services.redis_client(), reason=reason).version


@shared_task(name="day.advance", ignore_result=True, soft_time_limit=10, time_limit=20)
def trading_day_advance() -> list[str]:
    """Beat, every ~5 s: start the trading day's steps that are due on the market clock."""
    return services.trading_day_advance(client=services.redis_client(), now=market_now())


@shared_task(name="day.token_expiry", ignore_result=True, soft_time_limit=20, time_limit=40)
def broker_tokens_expire() -> list[str]:
    """06:00 IST: accounts whose access token died show token_expired until the next login."""
    return ticks_services.broker_tokens_expire(now=market_now())


@shared_task(name=readiness.HEARTBEAT_TASK, ignore_result=True, soft_time_limit=5, time_limit=10)
def heartbeat() -> None:
    """Beat, every READYZ_HEARTBEAT_S: sending it is beat's heartbeat (below); running it costs nothing."""


@before_task_publish.connect(sender=readiness.HEARTBEAT_TASK)
def beat_heartbeat(**kwargs: Any) -> None:
    """Written where the heartbeat task is published, that is in beat: so a dead default worker does not
    read as a dead beat."""
    _heartbeat_write(readiness.beat_heartbeat_record)


@worker_ready.connect
def worker_heartbeat_start(sender: Consumer, **kwargs: Any) -> None:
    """Every worker, on the consumer's own timer, beats for each queue it consumes: readyz then needs no
    broadcast ping per probe."""
    queues = sorted(queue.name for queue in sender.task_consumer.queues)

    def beat() -> None:
        _heartbeat_write(readiness.worker_heartbeat_record, hostname=sender.hostname, queues=queues)

    beat()
    sender.timer.call_repeatedly(settings.READYZ_HEARTBEAT_S, beat)


def _heartbeat_write(record: Callable[..., None], **kwargs: Any) -> None:
    client = services.redis_client()
    try:
        record(client, now=time.time(), ttl_s=settings.READYZ_HEARTBEAT_STALE_S, **kwargs)
    finally:
        client.close()
