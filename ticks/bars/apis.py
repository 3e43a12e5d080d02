"""GET /api/v1/bars: one instrument's bars over a range, as paginated JSON or a CSV export.

The range rules are Kite's (``from``/``to`` ISO 8601, IST when no offset is given): intraday bars
whose start lies in [from, to], day bars of the days from ``from``'s to ``to``'s; at most
KITE_MAX_SPAN_DAYS per interval (minute 60 days, ..., day 2000), the limit Kite puts on one historical
request. JSON is paginated (limit/offset, as every list here); CSV (``?format=csv`` or
``Accept: text/csv``) is the whole range in one streamed response with a header row, not paginated:
an export is one file, and the span limit bounds it. Times are IST with their offset, as Kite's.
"""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from tickerproject.bounds import BoundedDateTimeField, instrument_token_text_check
from tickerproject.pagination import BoundedLimitOffsetPagination
from tickerproject.schema import error_response, page_parameters
from ticks.bars.intervals import INTERVAL_MINUTES, KITE_MAX_SPAN_DAYS, MINUTE
from ticks.bars.resample import COLUMNS
from ticks.bars.selectors import bar_rows, bars_minute_rows, bars_read, instrument_resolve
from ticks.market_time import IST

CSV_CHUNK_ROWS = 1000


class CsvRenderer(BaseRenderer):
    """Picks CSV in content negotiation; the export views answer with a streamed response themselves."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"


class CsvExportApi(APIView):
    """A view that answers JSON, or CSV when ``?format=csv`` or ``Accept: text/csv`` asks for it."""

    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, CsvRenderer]

    def wants_csv(self, request: Request) -> bool:
        return isinstance(request.accepted_renderer, CsvRenderer)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        # Errors (400, 401, 404) stay JSON, which a client reads whatever format it asked for.
        if getattr(response, "exception", False) and isinstance(
            getattr(request, "accepted_renderer", None), CsvRenderer
        ):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    """``rows`` as a streamed CSV attachment; datetimes in IST, ISO 8601 with the offset (as Kite's)."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for count, row in enumerate(rows, 1):
            writer.writerow(
                [value.astimezone(IST).isoformat() if isinstance(value, datetime) else value for value in row]
            )
            if count % CSV_CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class RangeInputSerializer(serializers.Serializer):
    """``instrument``, ``from``, ``to``; subclasses give the longest span (``max_span_days``). A token
    Kite cannot have and a date near Python's limits are 400s here (tickerproject.bounds)."""

    instrument = serializers.CharField(max_length=80, help_text="instrument token or EXCHANGE:TRADINGSYMBOL")
    # "from" is a Python keyword, so it is declared through the class namespace.
    vars()["from"] = BoundedDateTimeField(help_text="ISO 8601; IST when no offset is given")
    to = BoundedDateTimeField(help_text="ISO 8601, inclusive; IST when no offset is given")

    def max_span_days(self, attrs: dict[str, Any]) -> int:
        raise NotImplementedError

    def validate_instrument(self, value: str) -> str:
        instrument_token_text_check(value)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"from": "Must be at or before `to`."})
        days = self.max_span_days(attrs)
        if attrs["to"] - attrs["from"] > timedelta(days=days):
            raise serializers.ValidationError({"to": f"The range may span at most {days} days here."})
        return attrs


def export_schema(page: str, input_serializer: type[serializers.Serializer], fields: dict[str, Any]) -> Any:
    """OpenAPI for a CsvExportApi's GET: its range parameters, a JSON page of ``fields``, or CSV."""
    return extend_schema(
        parameters=[
            input_serializer,
            OpenApiParameter("format", str, enum=["json", "csv"], description="csv: the whole range"),
            *page_parameters("JSON only"),
        ],
        responses={
            (200, "application/json"): inline_serializer(
                page,
                {
                    **fields,
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                },
            ),
            (200, "text/csv"): OpenApiTypes.STR,
            404: error_response("No instrument with that token or EXCHANGE:TRADINGSYMBOL."),
        },
    )


class BarOutputSerializer(serializers.Serializer):
    date = serializers.DateTimeField(help_text="the bar's first instant, IST (day bars: 00:00 IST)")
    open = serializers.FloatField()
    high = serializers.FloatField()
    low = serializers.FloatField()
    close = serializers.FloatField()
    volume = serializers.IntegerField(help_text="0 for an index")
    oi = serializers.IntegerField(help_text="open interest at the bar's last minute; 0 where none")


BAR_HEADER = ("date", *COLUMNS)


class BarListApi(CsvExportApi):
    """GET /api/v1/bars?instrument=<token|EXCHANGE:SYMBOL>&interval=<Kite's>&from=<ISO>&to=<ISO>[&format=csv]

    Unknown instrument: 404 naming ``instrument``. ``minute`` is the stored 1-minute bars; every other
    interval is resampled from them (ticks.bars.selectors).
    """

    class InputSerializer(RangeInputSerializer):
        interval = serializers.ChoiceField(choices=list(INTERVAL_MINUTES), help_text="Kite's interval name")

        def max_span_days(self, attrs: dict[str, Any]) -> int:
            return KITE_MAX_SPAN_DAYS[attrs["interval"]]

    @export_schema(
        "BarPage",
        InputSerializer,
        {
            "instrument_token": serializers.IntegerField(),
            "interval": serializers.CharField(),
            "results": BarOutputSerializer(many=True),
        },
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        token, interval = instrument_resolve(key=data["instrument"]).instrument_token, data["interval"]
        span = {"instrument_token": token, "start": data["from"], "end": data["to"]}
        if self.wants_csv(request):
            rows = bar_rows(bars_read(interval=interval, **span))
            return csv_response(f"bars-{token}-{interval}.csv", BAR_HEADER, rows)
        # Minutes page in SQL (count + page); other intervals are resampled from the whole range.
        source = (
            bars_minute_rows(**span) if interval == MINUTE else bar_rows(bars_read(interval=interval, **span))
        )
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(source, request, view=self)
        results = BarOutputSerializer(
            [dict(zip(BAR_HEADER, row, strict=True)) for row in page], many=True
        ).data
        response = paginator.get_paginated_response(results)
        response.data = {"instrument_token": token, "interval": interval, **response.data}
        return response
