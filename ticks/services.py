"""Writes for the market-data domain: instruments, broker accounts, watch specs, dashboard preferences."""

import logging
from dataclasses import dataclass
from datetime import datetime

from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone

from tickerproject.exceptions import BACKEND_UNAVAILABLE, ApplicationError
from ticks.instruments_csv import KITE_HEADER, InstrumentRow, RowError, parse_records, records_from_client
from ticks.kite import kite_client_for
from ticks.market_time import IST, access_token_expiry
from ticks.models import (
    DASHBOARD_COLUMNS,
    DASHBOARD_STRIKE_RANGE_MAX,
    DASHBOARD_STRIKE_RANGE_MIN,
    BrokerAccount,
    DashboardPreferences,
    Instrument,
)

logger = logging.getLogger(__name__)


class InstrumentLoadError(ApplicationError):
    """The dump had malformed rows; nothing was written."""

    def __init__(self, errors: list[RowError]):
        shown = "; ".join(str(error) for error in errors[:20])
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} malformed row(s), nothing loaded: {shown}{more}", field="file")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class InstrumentLoadResult:
    upserted: int
    deactivated: int
    exchanges: tuple[str, ...]


@transaction.atomic
def instruments_load(*, rows: list[InstrumentRow], errors: list[RowError]) -> InstrumentLoadResult:
    """Upsert a whole dump atomically and deactivate what it no longer lists.

    Any malformed row aborts the load before a write: a half-loaded instrument table would
    silently shrink option chains. Deactivation is scoped to the exchanges the dump covers.
    """
    if errors:
        raise InstrumentLoadError(errors)
    if not rows:
        raise ApplicationError("The dump has no instrument rows.", field="file")
    loaded_at = timezone.now()
    _instruments_upsert(rows, loaded_at)
    exchanges = tuple(sorted({row.exchange for row in rows}))
    deactivated = (
        Instrument.objects.filter(exchange__in=exchanges, is_active=True)
        .exclude(loaded_at=loaded_at)
        .update(is_active=False)
    )
    logger.info("instruments loaded: %d upserted, %d deactivated, %s", len(rows), deactivated, exchanges)
    return InstrumentLoadResult(upserted=len(rows), deactivated=deactivated, exchanges=exchanges)


_PG_ARRAY_TYPES = (
    "bigint", "bigint", "text", "text", "numeric", "date", "numeric",
    "numeric", "integer", "text", "text", "text", "boolean", "timestamptz",
)  # fmt: skip


def _instruments_upsert(rows: list[InstrumentRow], loaded_at: datetime) -> None:
    """INSERT .. ON CONFLICT DO UPDATE for the whole dump in few statements.

    The ORM's bulk_create took ~8 s for the 40k-row dump, and psycopg's client-side binding
    of one huge multi-row VALUES took ~12 s, so PostgreSQL gets one statement over
    ``unnest`` of column arrays and SQLite gets multi-row VALUES within its parameter limit.
    """
    ops = connection.ops
    columns = [ops.quote_name(column) for column in (*KITE_HEADER, "is_active", "loaded_at")]
    keys = (ops.quote_name("exchange"), ops.quote_name("tradingsymbol"))
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name not in keys)
    head = f"INSERT INTO {ops.quote_name(Instrument._meta.db_table)} ({', '.join(columns)}) "
    tail = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    stamp = ops.adapt_datetimefield_value(loaded_at)
    records = [(*_db_values(row, ops), True, stamp) for row in rows]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{kind}[]" for kind in _PG_ARRAY_TYPES)
            columns_of_values = [list(column) for column in zip(*records, strict=True)]
            # Identifiers come from model metadata, values are bound: no injection surface.
            cursor.execute(f"{head}SELECT * FROM unnest({arrays}){tail}", columns_of_values)  # noqa: S608
            return
        per_statement = (connection.features.max_query_params or 999) // len(columns)
        placeholder = f"({', '.join(['%s'] * len(columns))})"
        for start in range(0, len(records), per_statement):
            chunk = records[start : start + per_statement]
            values = ", ".join([placeholder] * len(chunk))
            params = [value for record in chunk for value in record]
            cursor.execute(f"{head}VALUES {values}{tail}", params)


def _db_values(row: InstrumentRow, ops: BaseDatabaseOperations) -> tuple[object, ...]:
    return (
        row.instrument_token,
        row.exchange_token,
        row.tradingsymbol,
        row.name,
        ops.adapt_decimalfield_value(row.last_price, 14, 4),
        ops.adapt_datefield_value(row.expiry),
        ops.adapt_decimalfield_value(row.strike, 14, 4),
        ops.adapt_decimalfield_value(row.tick_size, 10, 4),
        row.lot_size,
        row.instrument_type,
        row.segment,
        row.exchange,
    )


def broker_account_set_token(
    *, account: BrokerAccount, access_token: str, issued_at: datetime
) -> BrokerAccount:
    """Store a fresh daily access token; it expires at the next 06:00 IST."""
    account.access_token = access_token
    account.token_issued_at = issued_at
    account.token_expires_at = access_token_expiry(issued_at)
    account.health = BrokerAccount.Health.OK
    account.health_reason = ""
    account.health_changed_at = issued_at
    account.full_clean()
    account.save()
    return account


# Run at once on a new token rather than at beat's next tick: the re-plan puts the account back into
# the feed plan, the supervisor starts its feed (tasks named, not imported: workers depends on ticks).
FEEDS_RESUME_TASKS = (("feeds.rebalance", {"reason": "kite_login"}), ("feeds.supervise", {}))


def broker_account_log_in(*, account: BrokerAccount, access_token: str, issued_at: datetime) -> BrokerAccount:
    """A new day's token from a Kite login: stored, the account healthy, and the feeds told at once
    (orders see it through the lookup cache's save signal)."""
    with transaction.atomic():
        account = broker_account_set_token(account=account, access_token=access_token, issued_at=issued_at)
        transaction.on_commit(_feeds_resume)
    return account


def _feeds_resume() -> None:
    try:
        for task, kwargs in FEEDS_RESUME_TASKS:
            current_app.send_task(task, kwargs=kwargs, ignore_result=True)
    except BACKEND_UNAVAILABLE as error:
        # The token is stored: beat's supervisor and re-plan (every ~5 s) resume the feeds anyway.
        logger.warning("token stored; feeds resume with beat's next re-plan (broker unreachable: %s)", error)


def broker_account_mark_health(
    *, account: BrokerAccount, health: BrokerAccount.Health, reason: str, at: datetime
) -> BrokerAccount:
    """Record a health change (token expired, failing) with its reason, visible in admin."""
    updated = BrokerAccount.objects.filter(pk=account.pk).update(
        health=health, health_reason=reason[:255], health_changed_at=at
    )
    if updated != 1:
        raise ApplicationError(f"Broker account {account.pk} no longer exists.", field="account")
    account.refresh_from_db(fields=["health", "health_reason", "health_changed_at"])
    return account


def broker_tokens_expire(*, now: datetime) -> list[str]:
    """The 06:00 IST rollover: healthy accounts whose access token has died show ``token_expired``
    (the feeds stop at their next reconnect and the planner drains them) until a new login."""
    expired = BrokerAccount.objects.filter(
        enabled=True, health=BrokerAccount.Health.OK, token_expires_at__lte=now
    ).order_by("name")
    names = []
    for account in expired:
        reason = f"access token expired at {account.token_expires_at.astimezone(IST):%Y-%m-%d %H:%M} IST"
        broker_account_mark_health(
            account=account, health=BrokerAccount.Health.TOKEN_EXPIRED, reason=reason, at=now
        )
        names.append(account.name)
    return names


def instruments_refresh_from_kite(*, account: BrokerAccount) -> InstrumentLoadResult:
    """Fetch the full dump through the official client and load it."""
    records = kite_client_for(account).instruments()
    parsed = parse_records(records_from_client(records))
    return instruments_load(rows=parsed.rows, errors=parsed.errors)


def dashboard_preferences_save(
    *, user: AbstractBaseUser, columns: object, strike_range: object
) -> DashboardPreferences:
    """Store the user's dashboard layout, replacing the previous one.

    The values arrive as parsed JSON, so their types are checked here: "10", 10.0 and true are not a
    strike range, and a string is not a list of columns. Columns are stored in DASHBOARD_COLUMNS order
    whatever order they came in: the page's layout is fixed, the picker only chooses.
    """
    preferences, _ = DashboardPreferences.objects.update_or_create(
        user=user,
        defaults={
            "columns": _dashboard_columns(columns),
            "strike_range": _dashboard_strike_range(strike_range),
        },
    )
    return preferences


def _dashboard_columns(columns: object) -> list[str]:
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise ApplicationError("A list of column names.", field="columns")
    if not columns:
        raise ApplicationError("Choose at least one column.", field="columns")
    unknown = sorted(set(columns) - set(DASHBOARD_COLUMNS))
    if unknown:
        known = ", ".join(DASHBOARD_COLUMNS)
        raise ApplicationError(f"Unknown column(s) {', '.join(unknown)}; known: {known}.", field="columns")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise ApplicationError(f"Repeated column(s): {', '.join(repeated)}.", field="columns")
    return [name for name in DASHBOARD_COLUMNS if name in columns]


def _dashboard_strike_range(strike_range: object) -> int:
    low, high = DASHBOARD_STRIKE_RANGE_MIN, DASHBOARD_STRIKE_RANGE_MAX
    # JSON's true and false are ints to Python, 1 and 0: the range refuses them with the rest.
    if not isinstance(strike_range, int) or not low <= strike_range <= high:
        raise ApplicationError(f"An integer from {low} to {high}.", field="strike_range")
    return strike_range
