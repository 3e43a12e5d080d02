"""Market-data endpoints and the dashboard's preferences. Each view parses input, calls one selector or
service, formats output."""

from dataclasses import asdict
from typing import Any

import numpy as np
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.parsers import StrictJSONParser
from tickerproject.bounds import INSTRUMENT_TOKEN_MAX, BoundedDateField, underlying_check
from tickerproject.exceptions import ApplicationError, NotFoundError
from tickerproject.pagination import DIGITS, BoundedLimitOffsetPagination
from tickerproject.schema import UNAVAILABLE, UNDERLYING_PATH
from ticks.instruments_csv import KITE_HEADER
from ticks.models import (
    DASHBOARD_COLUMNS,
    DASHBOARD_STRIKE_RANGE_MAX,
    DASHBOARD_STRIKE_RANGE_MIN,
    Instrument,
)
from ticks.selectors import (
    chain_expiries,
    dashboard_preferences,
    feed_capacity_report,
    instrument_list,
    latest_ticks,
    underlying_exists,
)
from ticks.services import dashboard_preferences_save
from ticks.stream_tickets import StreamHolder, stream_ticket_issue


class InstrumentListApi(APIView):
    pagination_class = BoundedLimitOffsetPagination

    class FilterSerializer(serializers.Serializer):
        exchange = serializers.CharField(required=False, max_length=8)
        name = serializers.CharField(required=False, max_length=64)
        expiry = BoundedDateField(required=False)
        instrument_type = serializers.ChoiceField(choices=Instrument.Type.choices, required=False)
        strike_min = serializers.DecimalField(max_digits=14, decimal_places=4, required=False, min_value=0)
        strike_max = serializers.DecimalField(max_digits=14, decimal_places=4, required=False, min_value=0)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            low, high = attrs.get("strike_min"), attrs.get("strike_max")
            if low is not None and high is not None and low > high:
                raise serializers.ValidationError({"strike_max": "Must be >= strike_min."})
            return attrs

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Instrument
            fields = list(KITE_HEADER)
            ref_name = "Instrument"  # the OpenAPI component's name: every view's inner class is "Output"

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(instrument_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ChainExpiryListApi(APIView):
    @extend_schema(
        parameters=[UNDERLYING_PATH],
        responses=inline_serializer(
            "ChainExpiries",
            {
                "underlying": serializers.CharField(),
                "expiries": serializers.ListField(child=serializers.DateField()),
            },
        ),
    )
    def get(self, request: Request, underlying: str) -> Response:
        underlying_check(underlying)
        if not underlying_exists(underlying=underlying):
            raise NotFoundError(f"No active options for underlying {underlying!r}.", field="underlying")
        expiries = chain_expiries(underlying=underlying)
        return Response({"underlying": underlying, "expiries": [expiry.isoformat() for expiry in expiries]})


def _tick_as_dict(row: np.void) -> dict[str, Any]:
    return {name: row[name].tolist() for name in row.dtype.names}


class LatestTickListApi(APIView):
    MAX_TOKENS = 1000
    TOKENS = OpenApiParameter(
        "tokens",
        {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": INSTRUMENT_TOKEN_MAX},
            "minItems": 1,
            "maxItems": MAX_TOKENS,
        },
        required=True,
        style="form",
        explode=False,
        description="instrument tokens, comma-separated",
    )

    class FilterSerializer(serializers.Serializer):
        tokens = serializers.CharField(help_text="comma-separated instrument tokens")

        def validate_tokens(self, value: str) -> list[int]:
            # Decimal digits only, no empty items: what the schema's comma-separated integers allow.
            parts = value.split(",")
            if not all(DIGITS.fullmatch(part) for part in parts):
                raise serializers.ValidationError("Tokens must be integers, comma-separated.")
            tokens = [int(part) for part in parts]
            if not tokens or len(tokens) > LatestTickListApi.MAX_TOKENS:
                raise serializers.ValidationError(f"Give 1 to {LatestTickListApi.MAX_TOKENS} tokens.")
            if not all(1 <= token <= INSTRUMENT_TOKEN_MAX for token in tokens):
                raise serializers.ValidationError(f"A token is 1 to {INSTRUMENT_TOKEN_MAX}.")
            return tokens

    @extend_schema(
        parameters=[TOKENS],
        responses={
            200: inline_serializer(
                "LatestTicks",
                {
                    "ticks": serializers.ListField(
                        child=serializers.DictField(), help_text="one per known token"
                    )
                },
            ),
            503: UNAVAILABLE,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = latest_ticks(tokens=filters.validated_data["tokens"])
        return Response({"ticks": [_tick_as_dict(row) for row in rows]})


class FeedCapacityApi(APIView):
    """Whether the enabled watch specs fit the enabled, healthy broker accounts (the admin's report)."""

    class OutputSerializer(serializers.Serializer):
        needed = serializers.IntegerField(help_text="tokens the enabled specs stream")
        reserve = serializers.IntegerField(help_text="tokens held back for companion copies")
        capacity = serializers.IntegerField(help_text="tokens the healthy accounts can stream")
        accounts = serializers.IntegerField(help_text="healthy accounts")
        accounts_needed = serializers.IntegerField()
        per_account = serializers.IntegerField()
        connections = serializers.IntegerField(help_text="per account, of the shape accounts_needed counts")
        per_connection = serializers.IntegerField()
        streamed = serializers.ListField(
            child=serializers.CharField(), help_text="underlyings, priority order"
        )
        not_streamed = serializers.ListField(child=serializers.CharField())
        message = serializers.CharField()

        class Meta:
            ref_name = "FeedCapacity"

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        report = feed_capacity_report()
        return Response(self.OutputSerializer({**asdict(report), "message": report.message()}).data)


PREFERENCES_FIELDS = ("columns", "strike_range")


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "enum": list(DASHBOARD_COLUMNS)},
        "minItems": 1,
        "uniqueItems": True,
    }
)
class DashboardColumnsField(serializers.ListField):
    """Column names, none repeated (ticks.services refuses a repeat)."""


class DashboardPreferencesApi(APIView):
    """The signed-in user's dashboard layout: the page reads it on load and saves the column picker and
    the strike range with a PUT (a session with its CSRF token; scripts use an API key)."""

    parser_classes = [StrictJSONParser]  # deep nesting, NaN and repeated keys are a 400, not a 500

    class PreferencesSerializer(serializers.Serializer):
        refuses_unknown_fields = True  # by _preferences_body

        columns = DashboardColumnsField(
            child=serializers.ChoiceField(choices=DASHBOARD_COLUMNS),
            min_length=1,
            help_text="leg columns shown, no repeats; stored (and returned) outermost first",
        )
        strike_range = serializers.IntegerField(
            min_value=DASHBOARD_STRIKE_RANGE_MIN,
            max_value=DASHBOARD_STRIKE_RANGE_MAX,
            help_text="strikes shown each side of ATM",
        )

        class Meta:
            ref_name = "DashboardPreferences"

    @extend_schema(responses=PreferencesSerializer)
    def get(self, request: Request) -> Response:
        return Response(dashboard_preferences(user=request.user))

    @extend_schema(request=PreferencesSerializer, responses=PreferencesSerializer)
    def put(self, request: Request) -> Response:
        body = _preferences_body(request.data)
        dashboard_preferences_save(user=request.user, **body)
        return Response(dashboard_preferences(user=request.user))


def _preferences_body(data: Any) -> dict[str, Any]:
    """The PUT body's fields, every one present and no others (their values: the service checks)."""
    if not isinstance(data, dict):
        raise ApplicationError("The body must be a JSON object.", field="non_field_errors")
    errors = {name: ["Unknown field."] for name in sorted(set(data) - set(PREFERENCES_FIELDS))}
    errors |= {name: ["This field is required."] for name in PREFERENCES_FIELDS if name not in data}
    if errors:
        raise serializers.ValidationError(errors)
    return {name: data[name] for name in PREFERENCES_FIELDS}


class StreamTicketApi(APIView):
    """A single-use ticket for ``/ws/stream/?ticket=`` (README "Live stream"): a browser cannot put a
    header on a WebSocket, and a key in the URL would be in every access log on its way."""

    permission_classes = [IsAuthenticated]  # any scope: the stream only reads

    class OutputSerializer(serializers.Serializer):
        ticket = serializers.CharField(help_text="connect with /ws/stream/?ticket=<ticket>, once")
        expires_in = serializers.IntegerField(help_text="seconds it stays valid (STREAM_TICKET_TTL_S)")

        class Meta:
            ref_name = "StreamTicket"

    @extend_schema(request=None, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        # request.auth is the API key the request came with; None for a session.
        holder = StreamHolder(request.user.pk, getattr(request.auth, "prefix", None))
        ticket = stream_ticket_issue(holder=holder)
        return Response(self.OutputSerializer(ticket).data, status=201)
