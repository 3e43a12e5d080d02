"""Retention: bars older than BARS_RETENTION_DAYS (per interval) are deleted, counted back from the market's day."""

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from django.core.exceptions import ImproperlyConfigured

from ticks.bars.intervals import INTERVAL_MINUTES
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


def check_retention_setting(retention_days: Mapping[str, int]) -> None:
    """BARS_RETENTION_DAYS names Kite's intervals and gives each 0 (forever) or more days."""
    unknown = sorted(set(retention_days) - set(INTERVAL_MINUTES))
    if unknown:
        raise ImproperlyConfigured(
            f"BARS_RETENTION_DAYS: unknown interval(s) {', '.join(unknown)}; use {', '.join(INTERVAL_MINUTES)}"
        )
    negative = sorted(interval for interval, days in retention_days.items() if days < 0)
    if negative:
        raise ImproperlyConfigured(
            f"BARS_RETENTION_DAYS: days must be 0 (forever) or more, not for {negative}"
        )
