"""Limit/offset pagination that refuses numbers the database cannot take."""

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

from tickerproject.bounds import BIGINT_MAX


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """DRF's limit/offset (malformed values still fall back to the defaults, as before), with a 400
    naming ``limit`` or ``offset`` above BIGINT_MAX: PostgreSQL refused such a LIMIT with "bigint out of
    range" and SQLite's driver with OverflowError, both a 500."""

    def get_limit(self, request: Request) -> int | None:
        limit = super().get_limit(request)
        if limit is not None:
            _check_bigint("limit", limit)
        return limit

    def get_offset(self, request: Request) -> int:
        offset = super().get_offset(request)
        _check_bigint("offset", offset)
        return offset


def _check_bigint(field: str, value: int) -> None:
    if value > BIGINT_MAX:
        raise serializers.ValidationError({field: [f"Must be at most {BIGINT_MAX}."]})
