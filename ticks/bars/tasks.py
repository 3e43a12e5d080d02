"""Beat tasks for Kite's candles: settle closed minutes, fill gaps, fetch the options' previous close,
prune old bars.

Start-up: ``bars.fill_gaps`` and ``bars.previous_close`` also run once when beat starts (the
``beat_init`` signal), so a service brought up mid-session, or after an outage, has its gaps filled
and its change in OI without waiting a whole period. Beat is the one process that exists exactly
once, so the start-up runs happen once per deployment, not once per worker. The periodic runs catch
the gaps a feed outage leaves later on, and the strikes a re-plan adds.
"""

import logging
from typing import Any

from celery import shared_task
from celery.signals import beat_init
from django.conf import settings

from orders.redis_io import orders_redis
from ticks.bars.kite_history import HistoryUnavailable, default_account, kite_history_for
from ticks.bars.previous_close import bars_previous_close
from ticks.bars.retention import bars_prune
from ticks.bars.settlement import bars_fill_gaps, bars_settle
from ticks.bars.watched import bars_clock, watched_clock_tokens
from ticks.market_time import IST

logger = logging.getLogger(__name__)

# Kite's 429s and network drops are retried inside a request; a task retries once more if Kite stayed away.
RETRY = {"autoretry_for": (HistoryUnavailable,), "max_retries": 2, "retry_backoff": 5}


@shared_task(
    name="bars.settle",
    soft_time_limit=settings.BARS_SETTLE_S * 0.9,
    time_limit=settings.BARS_SETTLE_S,
    **RETRY,
)
def settle() -> dict[str, Any]:
    account = default_account()
    if account is None:
        logger.warning("bars settle skipped: no enabled healthy broker account")
        return {"tokens": 0}
    client = orders_redis()
    # Options stop at half the period: the other half is head-room for the core rows' waits.
    result = bars_settle(
        client=client, history=kite_history_for(account, client), budget_s=settings.BARS_SETTLE_S / 2
    )
    return {
        "tokens": len(result.tokens),
        "replaced": result.replaced,
        "inserted": result.inserted,
        "differences": result.differences,
    }


@shared_task(name="bars.fill_gaps", soft_time_limit=240, time_limit=280, **RETRY)
def fill_gaps() -> dict[str, int]:
    account = default_account()
    if account is None:
        logger.warning("bars gap fill skipped: no enabled healthy broker account")
        return {}
    client = orders_redis()
    written = bars_fill_gaps(client=client, history=kite_history_for(account, client))
    return {str(token): count for token, count in written.items()}


@shared_task(
    name="bars.previous_close",
    soft_time_limit=settings.BARS_PREVIOUS_CLOSE_S * 0.9,
    time_limit=settings.BARS_PREVIOUS_CLOSE_S,
    **RETRY,
)
def previous_close() -> dict[str, int | str]:
    account = default_account()
    if account is None:
        logger.warning("bars previous close skipped: no enabled healthy broker account")
        return {}
    client = orders_redis()
    # Half the period, as settlement: the rest is head-room for a request waiting on Kite's bucket.
    result = bars_previous_close(
        client=client,
        history=kite_history_for(account, client),
        now=bars_clock(client, watched_clock_tokens()),
        budget_s=settings.BARS_PREVIOUS_CLOSE_S / 2,
    )
    counts = result.as_dict()
    logger.info("bars previous close: %s", counts)
    return counts


@shared_task(name="bars.prune", soft_time_limit=120, time_limit=180)
def prune() -> dict[str, int]:
    today = bars_clock(orders_redis(), watched_clock_tokens()).astimezone(IST).date()
    return bars_prune(today=today, retention_days=settings.BARS_RETENTION_DAYS)


@beat_init.connect
def kite_candles_at_start(sender: Any = None, **kwargs: Any) -> None:
    fill_gaps.apply_async(expires=settings.BARS_GAP_FILL_S)
    previous_close.apply_async(expires=settings.BARS_PREVIOUS_CLOSE_S)
