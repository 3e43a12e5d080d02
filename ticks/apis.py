"""Read-only market-data endpoints. Each view parses input, calls one selector, formats output."""

from dataclasses import asdict
from typing import Any

import numpy as np
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tickerproject.exceptions import NotFoundError
from ticks.instruments_csv import KITE_HEADER
from ticks.models import Instrument
from ticks.selectors import (
    chain_expiries,
    feed_capacity_report,
    instrument_list,
    latest_ticks,
    underlying_exists,
)


class InstrumentListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        exchange = serializers.CharField(required=False, max_length=8)
        name = serializers.CharField(required=False, max_length=64)
        expiry = serializers.DateField(required=False)
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
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(instrument_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ChainExpiryListApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "ChainExpiries",
            {
                "underlying": serializers.CharField(),
                "expiries": serializers.ListField(child=serializers.DateField()),
            },
        )
    )
    def get(self, request: Request, underlying: str) -> Response:
        if not underlying_exists(underlying=underlying):
            raise NotFoundError(f"No active options for underlying {underlying!r}.", field="underlying")
        expiries = chain_expiries(underlying=underlying)
        return Response({"underlying": underlying, "expiries": [expiry.isoformat() for expiry in expiries]})


def _tick_as_dict(row: np.void) -> dict[str, Any]:
    return {name: row[name].tolist() for name in row.dtype.names}


class LatestTickListApi(APIView):
    MAX_TOKENS = 1000

    class FilterSerializer(serializers.Serializer):
        tokens = serializers.CharField(help_text="comma-separated instrument tokens")

        def validate_tokens(self, value: str) -> list[int]:
            try:
                tokens = [int(token) for token in value.split(",") if token.strip()]
            except ValueError:
                raise serializers.ValidationError("Tokens must be integers, comma-separated.") from None
            if not tokens or len(tokens) > LatestTickListApi.MAX_TOKENS:
                raise serializers.ValidationError(f"Give 1 to {LatestTickListApi.MAX_TOKENS} tokens.")
            return tokens

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer("LatestTicks", {"ticks": serializers.ListField()}),
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
