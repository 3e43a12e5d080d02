"""Writes for bars: one bulk upsert per batch, unique on (instrument, interval, start)."""

from collections.abc import Iterable
from datetime import UTC, datetime

from ticks.bars.records import BarRecord
from ticks.models import Bar

UPSERT_FIELDS = ("open", "high", "low", "close", "volume", "oi", "ticks", "source", "settled")


def bars_upsert(*, records: Iterable[BarRecord], batch_size: int = 2000) -> int:
    """Insert or replace bars in bulk (SQLite and PostgreSQL: INSERT ... ON CONFLICT DO UPDATE)."""
    rows = [
        Bar(
            instrument_token=r.instrument_token,
            interval=r.interval,
            start=datetime.fromtimestamp(r.start, UTC),
            open=r.open,
            high=r.high,
            low=r.low,
            close=r.close,
            volume=r.volume,
            oi=r.oi,
            ticks=r.ticks,
            source=r.source,
            settled=r.settled,
        )
        for r in records
    ]
    Bar.objects.bulk_create(
        rows,
        batch_size=batch_size,
        update_conflicts=True,
        unique_fields=["instrument_token", "interval", "start"],
        update_fields=list(UPSERT_FIELDS),
    )
    return len(rows)
