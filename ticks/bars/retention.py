"""Retention: bars older than BARS_RETENTION_DAYS (per interval) are deleted, counted back from the market's day."""

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from ticks.market_time import IST
from ticks.models import Bar


def retention_cutoffs(today: date, retention_days: Mapping[str, int]) -> dict[str, datetime]:
    """Per interval, the first instant kept: 00:00 IST ``days`` before ``today``; 0 or less keeps forever."""
    return {
        interval: datetime.combine(today - timedelta(days=days), time(0), tzinfo=IST)
        for interval, days in retention_days.items()
        if days > 0
    }


def bars_prune(*, today: date, retention_days: Mapping[str, int]) -> dict[str, int]:
    """Delete each interval's bars that start before its cutoff; rows deleted per interval."""
    return {
        interval: Bar.objects.filter(interval=interval, start__lt=cutoff).delete()[0]
        for interval, cutoff in retention_cutoffs(today, retention_days).items()
    }
