"""A JSON parser for order requests that is strict where DRF's is lenient."""

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ParseError(f"JSON parse error - repeated keys: {', '.join(repeated)}")
    return dict(pairs)


def _no_constants(name: str) -> float:
    raise ParseError(f"JSON parse error - {name} is not a number")


class StrictJSONParser(JSONParser):
    """Refuses NaN/Infinity, repeated keys, deep nesting and bodies over ORDER_MAX_BODY_BYTES."""

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.ORDER_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"Request body over {limit} bytes.")
        try:
            return json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
