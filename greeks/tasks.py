import redis
from celery import shared_task
from django.conf import settings

from greeks.services import greeks_snapshot_take


@shared_task(name="greeks.snapshot", ignore_result=True, soft_time_limit=30, time_limit=50)
def snapshot() -> int:
    """Beat, every 60 s: the minute snapshot of every live chain ("greeks-snapshot" in CELERY_BEAT_SCHEDULE)."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        return greeks_snapshot_take(redis_client=client)
    finally:
        client.close()
