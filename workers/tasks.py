import asyncio
import logging

from celery import Task, shared_task

from workers import services
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


@shared_task(name="workers.feed_supervise", ignore_result=True, soft_time_limit=10, time_limit=20)
def feed_supervise() -> list[int]:
    """Beat, every ~5 s: start a feed for every healthy account without a live lease."""
    return services.feed_supervise(client=services.redis_client())


@shared_task(name="workers.feed_reconcile", ignore_result=True, soft_time_limit=20, time_limit=40)
def feed_reconcile() -> int:
    """Beat, every ~15 s: re-plan around failed accounts and push corrections to drifting feeds."""
    return len(services.feed_reconcile(client=services.redis_client()))


@shared_task(name="workers.feed_plan_refresh", ignore_result=True, soft_time_limit=20, time_limit=40)
def feed_plan_refresh() -> int:
    return services.feed_plan_refresh(client=services.redis_client()).version
