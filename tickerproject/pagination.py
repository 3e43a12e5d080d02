"""Limit/offset pagination that refuses what it cannot honour, as the OpenAPI schema describes it."""

import re
from typing import Any

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from tickerproject.bounds import BIGINT_MAX

LIMIT_MIN = 1
OFFSET_MIN = 0
PAGE_NUMBER_MAX = BIGINT_MAX
DIGITS = re.compile(r"[0-9]+")


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """DRF's limit/offset, with a 400 naming ``limit`` or ``offset`` for a value that is not a decimal
    integer in LIMIT_MIN (OFFSET_MIN) to BIGINT_MAX. DRF silently served its default page for ``-3``
    or ``x``, which the schema's bounds could not describe; PostgreSQL refused a LIMIT past bigint
    ("bigint out of range") and SQLite's driver with OverflowError, both a 500."""

    def get_limit(self, request: Request) -> int | None:
        if self.limit_query_param not in request.query_params:
            return self.default_limit
        return _page_number(request, self.limit_query_param, LIMIT_MIN)

    def get_offset(self, request: Request) -> int:
        if self.offset_query_param not in request.query_params:
            return 0
        return _page_number(request, self.offset_query_param, OFFSET_MIN)

    def get_schema_operation_parameters(self, view: APIView | None) -> list[dict[str, Any]]:
        return [
            _parameter(self.limit_query_param, LIMIT_MIN, f"Items per page (default {self.default_limit})."),
            _parameter(self.offset_query_param, OFFSET_MIN, "Items to skip."),
        ]


def _page_number(request: Request, name: str, low: int) -> int:
    text = request.query_params[name]
    # int() would also take " 5", "+5", "1_0" and other scripts' digits, none of which the schema allows.
    if not DIGITS.fullmatch(text) or int(text) < low:
        raise serializers.ValidationError({name: [f"An integer from {low} to {PAGE_NUMBER_MAX}."]})
    if int(text) > PAGE_NUMBER_MAX:
        raise serializers.ValidationError({name: [f"Must be at most {PAGE_NUMBER_MAX}."]})
    return int(text)


def _parameter(name: str, low: int, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "required": False,
        "in": "query",
        "description": description,
        "schema": {"type": "integer", "minimum": low, "maximum": PAGE_NUMBER_MAX},
    }
