"""Writes for bars: one bulk upsert per batch, unique on (instrument, interval, start).

The upsert is raw SQL rather than ``bulk_create(update_conflicts=True)``: a minute of a full fleet
closes ~27,000 bars at once, and building and preparing that many model instances cost more than the
database's own work (bench/bars.py, part b). PostgreSQL gets one statement over ``unnest`` of one array
per column; SQLite multi-row ``VALUES`` (a big ``VALUES`` list is slow for PostgreSQL to parse and plan).
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.db import connection, transaction

from ticks.bars.records import BarRecord
from ticks.models import Bar

KEY_FIELDS = ("instrument_token", "interval", "start")
UPSERT_FIELDS = ("open", "high", "low", "close", "volume", "oi", "ticks", "source", "settled")
# 12 parameters a row: 800 rows stay under SQLite's 32,766 bound variables per statement.
ROWS_PER_STATEMENT = 800
PG_ARRAY_TYPES = ("bigint", "varchar", "timestamptz", "float8", "float8", "float8", "float8", "bigint", "bigint",
                  "integer", "varchar", "boolean")  # fmt: skip


def bars_upsert(*, records: Iterable[BarRecord]) -> int:
    """Insert or replace bars in bulk, all or none; a settled bar is replaced only by a settled one.
    Returns the bars offered."""
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (
            r.instrument_token, r.interval, adapt(datetime.fromtimestamp(r.start, UTC)),
            r.open, r.high, r.low, r.close, r.volume, r.oi, r.ticks, r.source, r.settled,
        )
        for r in records
    ]  # fmt: skip
    if not rows:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_unnest_sql(), [list(column) for column in zip(*rows, strict=True)])
        else:
            for first in range(0, len(rows), ROWS_PER_STATEMENT):
                chunk = rows[first : first + ROWS_PER_STATEMENT]
                cursor.execute(_values_sql(len(chunk)), _flatten(chunk))
    return len(rows)


def _flatten(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    return [value for row in rows for value in row]


def _columns() -> list[str]:
    return [
        connection.ops.quote_name(Bar._meta.get_field(name).column) for name in (*KEY_FIELDS, *UPSERT_FIELDS)
    ]


def _on_conflict(columns: list[str]) -> str:
    """Replace the stored bar, unless it is settled (Kite's own candle) and the new one is not: a live
    write retried after settlement, or a lagging feed's, must not undo it."""
    keys = ", ".join(columns[: len(KEY_FIELDS)])
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns[len(KEY_FIELDS) :])
    quote = connection.ops.quote_name
    settled = quote(Bar._meta.get_field("settled").column)
    stored = f"{quote(Bar._meta.db_table)}.{settled}"
    return f"ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE NOT {stored} OR excluded.{settled}"


@cache
def _unnest_sql() -> str:
    columns = _columns()
    arrays = ", ".join(f"%s::{kind}[]" for kind in PG_ARRAY_TYPES)
    table = connection.ops.quote_name(Bar._meta.db_table)
    # Identifiers come from the model's meta and every value is a bound parameter.
    insert = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"  # noqa: S608
    return f"{insert} {_on_conflict(columns)}"


@cache
def _values_sql(rows: int) -> str:
    columns = _columns()
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    table, values = connection.ops.quote_name(Bar._meta.db_table), ", ".join([placeholders] * rows)
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608 - as above
    return f"{insert} {_on_conflict(columns)}"
