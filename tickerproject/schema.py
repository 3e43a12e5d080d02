"""The OpenAPI schema's shared parts: the error body tickerproject.exceptions answers with, the error
answers every operation can give (added here, not repeated on each view), and the page parameters of
the views that page part of a larger answer.

Which errors an operation documents is read from the view: 401, 403 and 429 wherever a key is needed
(the key, its scope and CSRF, the throttles); 400 wherever there is input to refuse; 404 wherever a
path names a thing (and an unmatched path is Django's HTML page); 413 and 415 wherever a body is
parsed. A view adds what only it can answer (a 409, a 503) with ``extend_schema``.
"""

import re
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance, is_basic_serializer
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from orders.parsers import StrictJSONParser
from tickerproject.bounds import UNDERLYING_NAME, BoundedDateField, BoundedDateTimeField
from tickerproject.pagination import BoundedLimitOffsetPagination

ERROR_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer. `detail` says what went wrong; a refused input is named by a key "
    "holding its messages (a list, or an object by position or sub-field for a list or nested input).",
    "properties": {
        "detail": {"type": "string"},
        "order_id": {"type": "integer", "description": "409 on an order POST: the order the key made"},
        "retry_after": {"type": "integer", "description": "seconds, as the Retry-After header"},
        "kite_error": {"type": "string", "description": "the exception Kite answered with"},
    },
    "additionalProperties": {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}],
    },
}
RETRY_AFTER = {"schema": {"type": "integer", "minimum": 0}, "description": "seconds to wait before a retry"}
ERROR_HEADERS: dict[str, dict[str, Any]] = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Api-Key`"}},
    "409": {"Retry-After": RETRY_AFTER},
    "429": {"Retry-After": RETRY_AFTER},
    "503": {"Retry-After": RETRY_AFTER},
}
KEYED_ERRORS = {
    "401": "No key, a wrong, revoked or expired key, or an inactive user.",
    "403": "The key's scope does not allow this, a session request lacks its CSRF token, or the client "
    "may not trade on that account.",
    "429": "Too many requests from this key or address (or to Kite); see Retry-After.",
}
INPUT_ERROR = "An input is refused: each refused input is named with its messages."
BODY_ERRORS = {
    "415": "The body is not `application/json`.",
}
TOO_LARGE = "The body is over ORDER_MAX_BODY_BYTES."
PATH_VARIABLE = re.compile(r"\{(\w+)\}")
NOT_FOUND = "Not found. A path that matches no route is answered by Django's HTML page."


# What DRF refuses in any text input, as patterns: a NUL ("Null characters are not allowed", and
# PostgreSQL's text cannot hold one), and, where a field trims (str.strip), nothing but whitespace.
PYTHON_SPACE = "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace())
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = rf"^[^\x00]*[^\x00{PYTHON_SPACE}][^\x00]*$"
# DATETIME_YEARS (1970-2199) as the start of an ISO date; a test keeps the two in step.
YEARS = r"^(?:19[7-9][0-9]|2[01][0-9]{2})-"
# DRF reads a query string like an HTML form: an empty value of an optional (or nullable) field is
# taken as absent (or null), whatever the field's own rules.
EMPTY_VALUE = {"type": "string", "maxLength": 0}
EMPTY_AS_ABSENT = "(empty: as if absent)"


class ErrorSerializer(serializers.Serializer):
    """Only a name for ERROR_JSON_SCHEMA: the body is built by tickerproject.exceptions, not serialized."""

    class Meta:
        ref_name = "Error"


class ErrorSchema(OpenApiSerializerExtension):
    target_class = ErrorSerializer

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return ERROR_JSON_SCHEMA


def error_response(description: str) -> OpenApiResponse:
    """A view's own error answer, for ``extend_schema(responses={409: error_response("...")})``."""
    return OpenApiResponse(ErrorSerializer, description=description)


UNAVAILABLE = error_response(
    "Redis, the Celery broker or Kite is unavailable (or paused by the circuit "
    "breaker); nothing was changed. See Retry-After."
)
UNDERLYING_PATH = OpenApiParameter(
    "underlying",
    {"type": "string", "pattern": f"^{UNDERLYING_NAME.pattern}$"},
    OpenApiParameter.PATH,
    description="as Kite names it (instruments' `name`), e.g. NIFTY, M&M, BAJAJ-AUTO",
)
EXPIRY_PATH = OpenApiParameter(
    "expiry", {"type": "string", "format": "date", "pattern": YEARS}, OpenApiParameter.PATH
)


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with the error answers of the operation documented."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, description in self._errors().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(error_response(description), code)
        for code, response in responses.items():
            if code in ERROR_HEADERS:
                response.setdefault("headers", {}).update(ERROR_HEADERS[code])
            if code == "404" and self._path_parameters():
                response["content"]["text/html"] = {"schema": {"type": "string"}}
        return dict(sorted(responses.items()))

    def _process_override_parameters(self, direction: str = "request") -> dict[tuple[str, str], Any]:
        parameters = super()._process_override_parameters(direction)
        for name in self._optional_query_fields():
            parameter = parameters.get((name, OpenApiParameter.QUERY))
            if parameter is None:  # a read-only or hidden field is no parameter
                continue
            parameter["schema"] = {"anyOf": [parameter["schema"], EMPTY_VALUE]}
            parameter["description"] = f"{parameter.get('description', '')} {EMPTY_AS_ABSENT}".lstrip()
        return parameters

    def _optional_query_fields(self) -> set[str]:
        """Query parameters read by a serializer's field that takes an empty value as absent (or null);
        not those an OpenApiParameter of the same name describes instead."""
        overrides = self.get_override_parameters()
        described = {parameter.name for parameter in overrides if isinstance(parameter, OpenApiParameter)}
        return {
            name
            for serializer in overrides
            if is_basic_serializer(serializer)
            for name, field in force_instance(serializer).fields.items()
            if (not field.required or field.allow_null) and name not in described
        }

    def _map_basic_serializer(self, serializer: serializers.Serializer, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        # Either direction: a component may be shared, and an answer never carries other fields either.
        if getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(
        self, field: serializers.Field, direction: str, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and schema.get("type") == "string":
            schema.update(_input_constraints(field, schema))
        return schema

    def _errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            errors |= KEYED_ERRORS
        if self._takes_input():
            errors["400"] = INPUT_ERROR
        if self._path_parameters():
            errors["404"] = NOT_FOUND
        if self._get_request_body():
            errors |= BODY_ERRORS
            if any(issubclass(parser, StrictJSONParser) for parser in self.view.parser_classes):
                errors["413"] = TOO_LARGE
        return errors

    def _takes_input(self) -> bool:
        """Any query or header parameter, a body, or a path parameter read as text (an integer one that
        is not an integer does not match the route: 404)."""
        parameters = self._get_parameters()
        return bool(self._get_request_body()) or any(
            parameter["in"] != "path" or parameter["schema"].get("type") != "integer"
            for parameter in parameters
        )

    def _path_parameters(self) -> list[str]:
        return PATH_VARIABLE.findall(self.path)


def _input_constraints(field: serializers.Field, schema: dict[str, Any]) -> dict[str, Any]:
    """What the field refuses beyond drf-spectacular's mapping, so a value the schema allows is taken."""
    if isinstance(field, BoundedDateField | BoundedDateTimeField):
        return {"pattern": YEARS}
    if isinstance(field, serializers.DecimalField):
        return {"pattern": _decimal_pattern(field)}
    if isinstance(field, serializers.CharField) and "pattern" not in schema:
        return {"pattern": NOT_BLANK if field.trim_whitespace and not field.allow_blank else NO_NUL}
    return {}


def _decimal_pattern(field: serializers.DecimalField) -> str:
    whole, places = field.max_digits - field.decimal_places, field.decimal_places
    sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
    return rf"^{sign}(?:[0-9]{{1,{whole}}}(?:\.[0-9]{{0,{places}}})?|\.[0-9]{{1,{places}}})$"


def page_parameters(note: str = "") -> list[OpenApiParameter]:
    """limit and offset as BoundedLimitOffsetPagination takes them, for a view that pages part of its
    answer (a view that answers a page gets them from its ``pagination_class``)."""
    return [
        OpenApiParameter(
            parameter["name"], parameter["schema"], description=f"{parameter['description']} {note}".strip()
        )
        for parameter in BoundedLimitOffsetPagination().get_schema_operation_parameters(view=None)
    ]
