"""Order endpoints. Each view parses input, calls one service or selector and formats output.

Request bodies use Kite's parameter names; unknown fields, strings for numbers, booleans for numbers,
non-finite or out-of-range numbers are refused with a 400 naming the field.
"""

import copy
import math
import re
from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.authentication import CachedApiKeyAuthentication
from orders.errors import TradingNotPermittedError
from orders.models import Order, OrderEvent
from orders.parsers import StrictJSONParser
from orders.selectors import order_get, order_list, permitted_account, positions_for
from orders.services import PlaceRequest, order_cancel, order_modify, order_place
from orders.states import OrderStatus
from orders.validation import (
    EXCHANGES,
    ORDER_TYPES,
    PRODUCTS,
    TRANSACTION_TYPES,
    VALIDITIES,
    VARIETIES,
    OrderTerms,
)
from tickerproject.bounds import BoundedDateTimeField
from tickerproject.exceptions import ApplicationError, NotFoundError
from tickerproject.pagination import BoundedLimitOffsetPagination
from tickerproject.schema import UNAVAILABLE, error_response
from ticks.clocks import market_now

MAX_QUANTITY = 10_000_000
MAX_PRICE = Decimal("100000000")  # ₹10 crore a unit: far above any listed instrument
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII, as a header can carry it
TAG = re.compile(r"[A-Za-z0-9 _.:-]{1,20}")
STATUS_FILTER = OpenApiParameter(
    "status",
    {"type": "array", "items": {"type": "string", "enum": [status.value for status in OrderStatus]}},
    style="form",
    explode=False,
    description="comma-separated, e.g. OPEN,PLACED (any letter case)",
)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: not "10", not 10.0, not true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field(
    {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": float(MAX_PRICE),
        "description": "at most 4 decimal places, on the instrument's tick size",
    }
)
class PriceField(serializers.Field):
    """A JSON number (not a string, not a boolean), finite, 0 < price <= MAX_PRICE, up to 4 decimals."""

    default_error_messages = {
        "invalid": "A price must be a JSON number.",
        "range": f"A price must be above 0 and at most {MAX_PRICE}.",
        "places": "A price has at most 4 decimal places.",
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("range")
        value = Decimal(str(data))
        if not 0 < value <= MAX_PRICE:
            self.fail("range")
        if value != value.quantize(Decimal("0.0001")):
            self.fail("places")
        return value

    def to_representation(self, value: Decimal) -> str:
        return format(value.normalize(), "f")


class RejectUnknownFieldsMixin:
    refuses_unknown_fields = True  # the schema says so (tickerproject.schema)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))  # type: ignore[attr-defined]
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]


# Each serializer gets shallow copies of the declared fields, not DRF's deep copies (about 150 us of an
# order request here): binding only sets attributes on the copy, and nothing changes a declared field or
# the validator lists and error messages the copies share. (A comment: a docstring would reach the schema.)
class ShallowFieldCopiesMixin:
    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}  # type: ignore[attr-defined]


class OrderOutputSerializer(serializers.Serializer):
    """The documented shape of :func:`order_data` (a test keeps the two in step)."""

    id = serializers.IntegerField()
    account = serializers.CharField()
    exchange = serializers.CharField()
    tradingsymbol = serializers.CharField()
    variety = serializers.CharField()
    transaction_type = serializers.CharField()
    order_type = serializers.CharField()
    product = serializers.CharField()
    quantity = serializers.IntegerField()
    price = serializers.CharField(allow_null=True, help_text="decimal as a string; null for MARKET/SL-M")
    trigger_price = serializers.CharField(allow_null=True)
    validity = serializers.CharField()
    validity_ttl = serializers.IntegerField(allow_null=True)
    iceberg_legs = serializers.IntegerField(allow_null=True)
    iceberg_quantity = serializers.IntegerField(allow_null=True)
    tag = serializers.CharField(help_text="the client's own label")
    idempotency_key = serializers.CharField(
        allow_null=True, help_text="null on the later slices of a sliced order"
    )
    parent_id = serializers.IntegerField(allow_null=True, help_text="the first slice, for later slices")
    status = serializers.ChoiceField(choices=[status.value for status in OrderStatus])
    status_message = serializers.CharField()
    broker_order_id = serializers.CharField(allow_null=True, help_text="Kite's order_id")
    kite_status = serializers.CharField()
    filled_quantity = serializers.IntegerField()
    pending_quantity = serializers.IntegerField()
    average_price = serializers.CharField()
    modification_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    placed_at = serializers.DateTimeField(allow_null=True, help_text="when Kite acknowledged it")


class OrderEventOutputSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    source = serializers.ChoiceField(choices=OrderEvent.Source.choices)
    status_from = serializers.CharField()
    status_to = serializers.CharField()
    kite_status = serializers.CharField()
    message = serializers.CharField()
    data = serializers.DictField()


class OrderPlacedOutputSerializer(OrderOutputSerializer):
    slice_ids = serializers.ListField(child=serializers.IntegerField(), help_text="the other slices' ids")


class OrderDetailOutputSerializer(OrderPlacedOutputSerializer):
    events = OrderEventOutputSerializer(many=True, help_text="the order's history, oldest first")


# Built by hand: DRF's serializers cost ~2 ms an order on this machine (a 100-order page, 200 ms).
def order_data(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "account": order.account.name,
        "exchange": order.exchange,
        "tradingsymbol": order.tradingsymbol,
        "variety": order.variety,
        "transaction_type": order.transaction_type,
        "order_type": order.order_type,
        "product": order.product,
        "quantity": order.quantity,
        "price": _decimal_text(order.price),
        "trigger_price": _decimal_text(order.trigger_price),
        "validity": order.validity,
        "validity_ttl": order.validity_ttl,
        "iceberg_legs": order.iceberg_legs,
        "iceberg_quantity": order.iceberg_quantity,
        "tag": order.tag,
        "idempotency_key": order.idempotency_key,
        "parent_id": order.parent_id,
        "status": order.status,
        "status_message": order.status_message,
        "broker_order_id": order.broker_order_id,
        "kite_status": order.kite_status,
        "filled_quantity": order.filled_quantity,
        "pending_quantity": order.pending_quantity,
        "average_price": _decimal_text(order.average_price),
        "modification_count": order.modification_count,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "placed_at": order.placed_at,
    }


def order_placed_data(order: Order, slice_ids: list[int]) -> dict[str, Any]:
    return {**order_data(order), "slice_ids": slice_ids}


def order_detail_data(order: Order) -> dict[str, Any]:
    data = order_placed_data(order, [child.pk for child in order.slices.all()])
    data["events"] = [_event_data(event) for event in order.events.all()]
    return data


def _event_data(event: OrderEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "source": event.source,
        "status_from": event.status_from,
        "status_to": event.status_to,
        "kite_status": event.kite_status,
        "message": event.message,
        "data": event.data,
    }


def _decimal_text(value: Decimal | int | None) -> str | None:
    return None if value is None else format(Decimal(value).normalize(), "f")


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": f"^{IDEMPOTENCY_KEY.pattern}$"},
    location=OpenApiParameter.HEADER,
    required=True,
    description="Unique per order attempt (1-255 visible ASCII). The same key with the same body returns "
    "the original order (200); with a different body, 409.",
)


ORDER_ID = OpenApiParameter("order_id", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH)
NOT_NOW = error_response(
    "The order is final, being sent to Kite (retry after Retry-After), or at Kite's 25 modifications."
)


# The project's default pair (API key first, so an anonymous request gets 401 with WWW-Authenticate:
# Api-Key), the key check cached (orders.authentication).
AUTHENTICATION = [CachedApiKeyAuthentication, SessionAuthentication]


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise ApplicationError("This header is required.", field="Idempotency-Key")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApplicationError("1-255 visible ASCII characters.", field="Idempotency-Key")
    return key


def _owned_order(request: Request, order_id: int) -> Order:
    order = order_get(client=request.user, order_id=order_id)
    if order is None:
        raise NotFoundError(f"No order {order_id}.")
    return order


def _detail(request: Request, order: Order) -> dict[str, Any]:
    return order_detail_data(_owned_order(request, order.pk))


class OrderListApi(APIView):
    authentication_classes = AUTHENTICATION
    parser_classes = [StrictJSONParser]
    pagination_class = BoundedLimitOffsetPagination

    class InputSerializer(ShallowFieldCopiesMixin, RejectUnknownFieldsMixin, serializers.Serializer):
        class Meta:
            ref_name = "OrderPlace"

        account = StrictCharField(max_length=64)
        exchange = StrictChoiceField(choices=EXCHANGES)
        tradingsymbol = StrictCharField(max_length=64)
        variety = StrictChoiceField(choices=VARIETIES)
        transaction_type = StrictChoiceField(choices=TRANSACTION_TYPES)
        order_type = StrictChoiceField(choices=ORDER_TYPES)
        product = StrictChoiceField(choices=PRODUCTS)
        quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)
        price = PriceField(required=False, allow_null=True)
        trigger_price = PriceField(required=False, allow_null=True)
        validity = StrictChoiceField(choices=VALIDITIES, default="DAY")
        validity_ttl = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=10_000)
        iceberg_legs = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=1_000)
        # Not trimmed: the pattern is the whole rule (a tab is refused, not trimmed to nothing).
        tag = StrictCharField(
            required=False,
            max_length=20,
            allow_blank=True,
            default="",
            trim_whitespace=False,
            validators=[RegexValidator(f"^{TAG.pattern}$", "Up to 20 letters, digits, spaces or _ . : -")],
        )
        autoslice = StrictBooleanField(required=False, default=False)

    class FilterSerializer(serializers.Serializer):
        account = serializers.CharField(required=False, max_length=64)
        status = serializers.CharField(required=False, trim_whitespace=False)
        exchange = serializers.ChoiceField(required=False, choices=EXCHANGES)
        tradingsymbol = serializers.CharField(required=False, max_length=64)
        tag = serializers.CharField(required=False, max_length=20)
        created_after = BoundedDateTimeField(required=False)
        created_before = BoundedDateTimeField(required=False)

        def validate_status(self, value: str) -> list[str]:
            # Exactly the schema's comma-separated names: no empty items, no spaces around them.
            statuses = [part.upper() for part in value.split(",")]
            unknown = sorted(set(statuses) - set(OrderStatus))
            if unknown:
                raise serializers.ValidationError(f"Unknown status: {', '.join(unknown)}.")
            return statuses

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=InputSerializer,
        responses={
            201: OrderPlacedOutputSerializer,
            200: OpenApiResponse(OrderPlacedOutputSerializer, description="replay of the same key and body"),
            409: error_response(
                "The key was used with a different body (`order_id` names its order), or the account's "
                "Kite token was refused."
            ),
            503: UNAVAILABLE,
        },
    )
    def post(self, request: Request) -> Response:
        key = _idempotency_key(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        account, tag = data.pop("account"), data.pop("tag")
        result = order_place(
            client=request.user,
            idempotency_key=key,
            request=PlaceRequest(account=account, terms=OrderTerms(**data), tag=tag),
            market_now=market_now(),
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(order_placed_data(result.order, result.slice_ids), status=code)

    @extend_schema(
        parameters=[FilterSerializer, STATUS_FILTER],
        responses={200: OrderOutputSerializer(many=True), 503: UNAVAILABLE},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = dict(filters.validated_data)
        values["statuses"] = values.pop("status", None)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(order_list(client=request.user, **values), request, view=self)
        return paginator.get_paginated_response([order_data(order) for order in page])


class OrderDetailApi(APIView):
    authentication_classes = AUTHENTICATION
    parser_classes = [StrictJSONParser]

    class ModifySerializer(ShallowFieldCopiesMixin, RejectUnknownFieldsMixin, serializers.Serializer):
        class Meta:
            ref_name = "OrderModify"

        quantity = StrictIntegerField(required=False, min_value=1, max_value=MAX_QUANTITY)
        price = PriceField(required=False, allow_null=True)
        trigger_price = PriceField(required=False, allow_null=True)
        order_type = StrictChoiceField(required=False, choices=ORDER_TYPES)
        validity = StrictChoiceField(required=False, choices=VALIDITIES)
        validity_ttl = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=10_000)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not attrs:
                raise serializers.ValidationError("Give at least one field to change.")
            return attrs

    @extend_schema(parameters=[ORDER_ID], responses={200: OrderDetailOutputSerializer, 503: UNAVAILABLE})
    def get(self, request: Request, order_id: int) -> Response:
        return Response(order_detail_data(_owned_order(request, order_id)))

    @extend_schema(
        parameters=[ORDER_ID],
        request=ModifySerializer,
        responses={200: OrderDetailOutputSerializer, 409: NOT_NOW, 503: UNAVAILABLE},
    )
    def patch(self, request: Request, order_id: int) -> Response:
        order = _owned_order(request, order_id)
        serializer = self.ModifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order_modify(
            order=order,
            changes=serializer.validated_data,
            market_now=market_now(),
            source=OrderEvent.Source.API,
        )
        return Response(_detail(request, order))

    @extend_schema(
        parameters=[ORDER_ID],
        responses={
            200: OpenApiResponse(
                OrderDetailOutputSerializer, description="cancelled (it never reached Kite)"
            ),
            202: OpenApiResponse(OrderDetailOutputSerializer, description="cancel requested at Kite"),
            409: NOT_NOW,
            503: UNAVAILABLE,
        },
    )
    def delete(self, request: Request, order_id: int) -> Response:
        order = _owned_order(request, order_id)
        done = order_cancel(order=order, source=OrderEvent.Source.API)
        return Response(
            _detail(request, order), status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED
        )


class PositionListApi(APIView):
    authentication_classes = AUTHENTICATION

    class FilterSerializer(serializers.Serializer):
        account = serializers.CharField(max_length=64)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={
            200: inline_serializer(
                "Positions",
                {
                    "account": serializers.CharField(),
                    "fetched_at": serializers.DateTimeField(),
                    "cached": serializers.BooleanField(),
                    "net": serializers.ListField(child=serializers.DictField()),
                    "day": serializers.ListField(child=serializers.DictField()),
                },
            ),
            503: UNAVAILABLE,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        name = filters.validated_data["account"]
        account = permitted_account(client=request.user, name=name, with_secrets=True)
        if account is None:
            raise TradingNotPermittedError(f"You may not trade on account {name!r}.", field="account")
        return Response(positions_for(account=account))
