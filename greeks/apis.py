"""Option chains with IV and Greeks: live, at a stored minute, one strike's IV over a day, one option's export."""

from datetime import UTC, datetime
from typing import Any

from django.http import QueryDict, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from greeks.selectors import (
    HISTORY_FIELDS,
    greeks_chain_live,
    greeks_chain_minute,
    greeks_option_history,
    greeks_strike_history,
)
from tickerproject.bounds import BoundedDateField, BoundedDateTimeField, underlying_check
from tickerproject.pagination import BoundedLimitOffsetPagination
from tickerproject.schema import EXPIRY_PATH, UNAVAILABLE, UNDERLYING_PATH
from ticks.bars.apis import CsvExportApi, RangeInputSerializer, csv_response, export_schema
from ticks.bars.intervals import KITE_MAX_SPAN_DAYS, MINUTE
from ticks.bars.selectors import instrument_resolve


class QuoteGreeksSerializer(serializers.Serializer):
    """An option's quote, IV and Greeks: what a chain leg and a stored minute share."""

    last_price = serializers.FloatField(allow_null=True)
    bid = serializers.FloatField(allow_null=True)
    ask = serializers.FloatField(allow_null=True)
    oi = serializers.IntegerField(allow_null=True)
    volume = serializers.IntegerField(allow_null=True)
    iv = serializers.FloatField(allow_null=True, help_text="from the last price, a fraction")
    iv_mid = serializers.FloatField(allow_null=True, help_text="from the mid of the best bid and ask")
    delta = serializers.FloatField(allow_null=True)
    gamma = serializers.FloatField(allow_null=True)
    theta = serializers.FloatField(allow_null=True, help_text="rupees per calendar day")
    vega = serializers.FloatField(allow_null=True, help_text="rupees per vol point")
    rho = serializers.FloatField(allow_null=True, help_text="rupees per rate point")
    status = serializers.CharField(
        help_text="ok, no_price, pending, below_intrinsic, above_max, expired, ..."
    )


class EpochDateTimeField(serializers.DateTimeField):
    """An epoch-seconds attribute served as an ISO datetime in IST, as every other time in the API."""

    def to_representation(self, value: int) -> str:
        return super().to_representation(datetime.fromtimestamp(value, tz=UTC))


class OptionOutputSerializer(QuoteGreeksSerializer):
    """One leg of a chain row (shared by the live and the stored chain)."""

    instrument_token = serializers.IntegerField()
    last_trade_time = EpochDateTimeField(
        allow_null=True,
        help_text="the last trade's exchange time (live chain, full-mode ticks); null in a stored minute",
    )


class StrikeOutputSerializer(serializers.Serializer):
    strike = serializers.FloatField()
    CE = OptionOutputSerializer(source="call", allow_null=True)
    PE = OptionOutputSerializer(source="put", allow_null=True)


def _query_with_expiry(request: Request, expiry: str) -> QueryDict:
    """The query string with the path's expiry in it, still a QueryDict: DRF reads an empty optional
    value (``?at=``) as absent, as in every other view and as the schema says."""
    query = request.query_params.copy()
    query["expiry"] = expiry  # the path's, over any query value of the same name
    return query


class ChainApi(APIView):
    """GET /api/v1/chains/<underlying>/<expiry>[?at=<ISO datetime>]"""

    class FilterSerializer(serializers.Serializer):
        at = BoundedDateTimeField(required=False, help_text="serve the stored minute at or before this")

    class InputSerializer(FilterSerializer):
        expiry = BoundedDateField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Chain"  # the OpenAPI component's name: every view's inner class is "Output"

        underlying = serializers.CharField()
        expiry = serializers.DateField()
        source = serializers.CharField(help_text="live or snapshot")
        as_of = serializers.DateTimeField(allow_null=True, help_text="market (exchange) time")
        forward = serializers.FloatField(allow_null=True)
        forward_source = serializers.CharField(help_text="future, parity, index or none")
        atm_strike = serializers.FloatField(allow_null=True)
        t_years = serializers.FloatField(allow_null=True)
        strikes = StrikeOutputSerializer(many=True)

    @extend_schema(
        parameters=[UNDERLYING_PATH, EXPIRY_PATH, FilterSerializer],
        responses={200: OutputSerializer, 503: UNAVAILABLE},
    )
    def get(self, request: Request, underlying: str, expiry: str) -> Response:
        underlying_check(underlying)
        params = self.InputSerializer(data=_query_with_expiry(request, expiry))
        params.is_valid(raise_exception=True)
        at = params.validated_data.get("at")
        day = params.validated_data["expiry"]
        if at is None:
            chain = greeks_chain_live(underlying=underlying, expiry=day)
        else:
            chain = greeks_chain_minute(underlying=underlying, expiry=day, at=at)
        return Response(self.OutputSerializer(chain).data)


class HistoryPointOutputSerializer(serializers.Serializer):
    taken_at = serializers.DateTimeField(help_text="the minute, in market (exchange) time")
    forward = serializers.FloatField(allow_null=True)
    iv = serializers.FloatField(allow_null=True, help_text="the OTM leg's: CE at or above the forward")
    call_iv = serializers.FloatField(allow_null=True)
    put_iv = serializers.FloatField(allow_null=True)


class ChainHistoryApi(APIView):
    """GET /api/v1/chains/<underlying>/<expiry>/history?strike=<K>[&date=<YYYY-MM-DD>]"""

    class FilterSerializer(serializers.Serializer):
        strike = serializers.DecimalField(max_digits=14, decimal_places=4, min_value=0)
        date = BoundedDateField(required=False, help_text="a trading day (IST); default the latest stored")

    class InputSerializer(FilterSerializer):
        expiry = BoundedDateField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StrikeHistory"

        underlying = serializers.CharField()
        expiry = serializers.DateField()
        strike = serializers.FloatField()
        date = serializers.DateField(source="day")
        points = HistoryPointOutputSerializer(many=True)

    @extend_schema(parameters=[UNDERLYING_PATH, EXPIRY_PATH, FilterSerializer], responses=OutputSerializer)
    def get(self, request: Request, underlying: str, expiry: str) -> Response:
        underlying_check(underlying)
        params = self.InputSerializer(data=_query_with_expiry(request, expiry))
        params.is_valid(raise_exception=True)
        data = params.validated_data
        history = greeks_strike_history(
            underlying=underlying, expiry=data["expiry"], strike=data["strike"], day=data.get("date")
        )
        return Response(self.OutputSerializer(history).data)


class OptionHistoryPointSerializer(QuoteGreeksSerializer):
    taken_at = serializers.DateTimeField(help_text="the minute, in market (exchange) time, IST")
    forward = serializers.FloatField(allow_null=True)
    forward_source = serializers.CharField(help_text="future, parity, index or none")
    t_years = serializers.FloatField(allow_null=True)


class OptionGreeksHistoryApi(CsvExportApi):
    """GET /api/v1/greeks/history?instrument=<token|NFO:SYMBOL>&from=<ISO>&to=<ISO>[&format=csv]

    One option's stored minutes (greeks.models.GreeksSnapshot) in [from, to]: JSON paginated
    (limit/offset), CSV the whole range with a header row. Minute data, so minute bars' span limit
    (60 days). Unknown instrument 404, a non-option 400, both naming ``instrument``.
    """

    class InputSerializer(RangeInputSerializer):
        def max_span_days(self, attrs: dict[str, Any]) -> int:
            return KITE_MAX_SPAN_DAYS[MINUTE]

    @export_schema(
        "OptionGreeksHistoryPage",
        InputSerializer,
        {"instrument_token": serializers.IntegerField(), "results": OptionHistoryPointSerializer(many=True)},
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        option = instrument_resolve(key=data["instrument"])
        rows = greeks_option_history(option=option, start=data["from"], end=data["to"])
        if self.wants_csv(request):
            # Read before streaming: the database is not touched once the server iterates the body.
            return csv_response(f"greeks-{option.instrument_token}.csv", HISTORY_FIELDS, list(rows))
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        points = [dict(zip(HISTORY_FIELDS, row, strict=True)) for row in page]
        response = paginator.get_paginated_response(OptionHistoryPointSerializer(points, many=True).data)
        response.data = {"instrument_token": option.instrument_token, **response.data}
        return response
