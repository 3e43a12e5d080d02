"""Parse Kite's instruments dump (pure: text in, typed rows and line-numbered errors out)."""

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

KITE_HEADER = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
INSTRUMENT_TYPES = frozenset({"CE", "PE", "FUT", "EQ"})


@dataclass(frozen=True, slots=True)
class InstrumentRow:
    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    last_price: Decimal
    expiry: date | None
    strike: Decimal
    tick_size: Decimal
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParseResult:
    rows: list[InstrumentRow]
    errors: list[RowError]


class HeaderError(ValueError):
    """The first line is not Kite's instruments header."""


def _integer(raw: str, column: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{column} {raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{column} {value} is below {minimum}")
    return value


def _decimal(raw: str, column: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{column} {raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{column} {raw!r} must be a finite number >= 0")
    return value


def _expiry(raw: str) -> date | None:
    if raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"expiry {raw!r} is not YYYY-MM-DD") from None


def row_from_fields(fields: Mapping[str, str]) -> InstrumentRow:
    """One CSV record as typed values; ValueError names the offending column."""
    instrument_type = fields["instrument_type"]
    if instrument_type not in INSTRUMENT_TYPES:
        raise ValueError(f"instrument_type {instrument_type!r} is not one of {sorted(INSTRUMENT_TYPES)}")
    for column in ("tradingsymbol", "segment", "exchange"):
        if not fields[column]:
            raise ValueError(f"{column} is empty")
    return InstrumentRow(
        instrument_token=_integer(fields["instrument_token"], "instrument_token", minimum=1),
        exchange_token=_integer(fields["exchange_token"], "exchange_token"),
        tradingsymbol=fields["tradingsymbol"],
        name=fields["name"],
        last_price=_decimal(fields["last_price"], "last_price"),
        expiry=_expiry(fields["expiry"]),
        strike=_decimal(fields["strike"], "strike"),
        tick_size=_decimal(fields["tick_size"], "tick_size"),
        lot_size=_integer(fields["lot_size"], "lot_size"),
        instrument_type=instrument_type,
        segment=fields["segment"],
        exchange=fields["exchange"],
    )


def parse_records(records: Iterable[Mapping[str, str]]) -> ParseResult:
    """Typed rows from already-split records (header is line 1, records from line 2)."""
    return _parse_numbered(enumerate(records, start=2))


def parse_csv(text: str) -> ParseResult:
    """Parse a whole dump. Raises HeaderError when the header is not Kite's."""
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != KITE_HEADER:
        raise HeaderError(f"expected header {','.join(KITE_HEADER)}, got {','.join(header) or 'nothing'}")
    numbered: list[tuple[int, Mapping[str, str]]] = []
    shape_errors: list[RowError] = []
    for line, values in enumerate(reader, start=2):
        if len(values) != len(KITE_HEADER):
            shape_errors.append(RowError(line, f"expected {len(KITE_HEADER)} columns, got {len(values)}"))
            continue
        numbered.append((line, dict(zip(KITE_HEADER, values, strict=True))))
    result = _parse_numbered(numbered)
    errors = sorted([*shape_errors, *result.errors], key=lambda error: error.line)
    return ParseResult(result.rows, errors)


def _parse_numbered(records: Iterable[tuple[int, Mapping[str, str]]]) -> ParseResult:
    rows: list[InstrumentRow] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for line, fields in records:
        try:
            row = row_from_fields(fields)
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
            continue
        key = (row.exchange, row.tradingsymbol)
        if key in seen:
            errors.append(RowError(line, f"{key[0]}:{key[1]} repeats line {seen[key]}"))
            continue
        seen[key] = line
        rows.append(row)
    return ParseResult(rows, errors)


def records_from_client(records: Iterable[Mapping[str, object]]) -> list[dict[str, str]]:
    """kiteconnect's ``instruments()`` output (ints, floats, dates) back to CSV strings."""
    return [{column: _as_text(record[column]) for column in KITE_HEADER} for record in records]


def _as_text(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)
