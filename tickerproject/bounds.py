"""The ranges client input must fit before it reaches code that cannot hold more.

Kite's instrument tokens are unsigned 32-bit on the wire, while the database column is a bigint and
SQLite's driver raises OverflowError past 64 bits; PostgreSQL reads LIMIT and OFFSET as bigint. The
ORM converts an IST datetime to UTC, day windows add a day and pandas' timestamps end in 2262, so a
date near Python's years 1 or 9999 overflows on its way to the database: dates are kept to years
DATETIME_YEARS, well inside every one of those.
"""

import re
from datetime import date, datetime
from typing import Any

from rest_framework import serializers

from tickerproject.exceptions import ApplicationError

INSTRUMENT_TOKEN_MAX = 2**32 - 1
BIGINT_MAX = 2**63 - 1
DATETIME_YEARS = range(1970, 2200)
# An underlying as Kite names it (instruments' "name"): letters, digits, "&" and "-" (M&M, BAJAJ-AUTO),
# at most Instrument.name's 64 characters.
UNDERLYING_NAME = re.compile(r"[A-Za-z0-9&-]{1,64}")


class BoundedDateTimeField(serializers.DateTimeField):
    """A DateTimeField whose year lies in DATETIME_YEARS (400, naming the field, otherwise)."""

    default_error_messages = {
        "years": f"Must lie in the years {DATETIME_YEARS.start} to {DATETIME_YEARS.stop - 1}.",
    }

    def enforce_timezone(self, value: datetime) -> datetime:
        # Before DRF's own, which moves the value to UTC and so overflowed near year 1 (a 500).
        if value.year not in DATETIME_YEARS:
            self.fail("years")
        return super().enforce_timezone(value)


class BoundedDateField(serializers.DateField):
    """A DateField whose year lies in DATETIME_YEARS (400, naming the field, otherwise)."""

    default_error_messages = BoundedDateTimeField.default_error_messages

    def to_internal_value(self, value: Any) -> date:
        parsed = super().to_internal_value(value)
        if parsed.year not in DATETIME_YEARS:
            self.fail("years")
        return parsed


def instrument_token_text_check(key: str) -> None:
    """Raise a ValidationError if ``key`` reads as a token (digits) but is not one Kite can have."""
    key = key.strip()
    if not key.isdigit():
        return
    # "²" is a digit to str.isdigit() but not to int(); a decimal string converts.
    if not key.isdecimal() or not 1 <= int(key) <= INSTRUMENT_TOKEN_MAX:
        raise serializers.ValidationError(f"An instrument token is 1 to {INSTRUMENT_TOKEN_MAX}.")


def underlying_check(underlying: str) -> None:
    """Raise ApplicationError naming ``underlying`` if Kite cannot have named it so (a NUL was a 500 on
    PostgreSQL, whose text cannot hold one)."""
    if not UNDERLYING_NAME.fullmatch(underlying):
        raise ApplicationError("An underlying is 1 to 64 letters, digits, & or -.", field="underlying")
