import asyncio
import logging

from celery import Task, shared_task

from workers.feed import feed_run

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="workers.feed",
    acks_late=False,  # the supervisor restarts feeds; redelivery would start a duplicate
    soft_time_limit=None,
    time_limit=None,
    ignore_result=True,
)
def feed(self: Task, account_id: int) -> str:
    """Stream one broker account until its lease is lost, it is disabled, or its worker stops."""
    reason = asyncio.run(feed_run(account_id, asyncio.Event(), worker=self.request.hostname or ""))
    logger.info("feed for account %d ended: %s", account_id, reason)
    return reason
