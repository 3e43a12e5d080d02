"""Operational endpoints: liveness and the state of every feed."""

import hmac
import ipaddress
import os
import time
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tickerproject.bounds import INSTRUMENT_TOKEN_MAX
from tickerproject.pagination import BoundedLimitOffsetPagination
from tickerproject.schema import UNAVAILABLE, page_parameters
from ticks.models import BrokerAccount
from ticks.selectors import broker_account_get
from workers import readiness
from workers.collectors import FleetCollector
from workers.models import FeedAssignment, FeedPlan
from workers.selectors import feed_assignment_list, feed_plan_overview, feed_status_list
from workers.services import redis_client


def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": readiness.database_ok(), "redis": readiness.redis_ok()}
    return JsonResponse({"ok": all(checks.values()), **checks}, status=200 if all(checks.values()) else 503)


def readyz(request: HttpRequest) -> JsonResponse:
    """Every component of the fleet; 503 naming those not ready (README "Health and readiness")."""
    components = readiness.readiness_evaluate().components
    not_ready = [c.name for c in components if not c.ready]
    body = {
        "ready": not not_ready,
        "not_ready": not_ready,
        "components": {c.name: {"ready": c.ready, "detail": c.detail} for c in components},
    }
    return JsonResponse(body, status=503 if not_ready else 200)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; with PROMETHEUS_MULTIPROC_DIR set, every process's metrics.

    Labels carry account names, hostnames and PIDs: with METRICS_TOKEN set (required in production)
    only ``Authorization: Bearer <token>`` reads them; without it, only a loopback client (dev).
    """
    if (refusal := _metrics_refusal(request)) is not None:
        return refusal
    registry = REGISTRY
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _forget_dead_processes(Path(directory))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    fleet = CollectorRegistry()  # the scrape-time families, read now from the database and Redis
    fleet.register(FleetCollector())
    return HttpResponse(generate_latest(registry) + generate_latest(fleet), content_type=CONTENT_TYPE_LATEST)


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    token = settings.METRICS_TOKEN
    if not token:
        if _loopback(request.META.get("REMOTE_ADDR", "")):
            return None
        return HttpResponse("metrics are served to loopback clients only\n", status=403)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        refusal = HttpResponse("Authorization: Bearer <METRICS_TOKEN> required\n", status=401)
        refusal["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refusal
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return HttpResponse("wrong metrics token\n", status=403)
    return None


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a unix socket's peer, or none
        return False


def _forget_dead_processes(directory: Path) -> None:
    """``live*`` gauges (feeds connected, tokens subscribed) leave out a process only once it is
    marked dead, and a Celery child that was killed, recycled or timed out never marks itself."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not _running(pid):
            multiprocess.mark_process_dead(pid, str(directory))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


class FeedListApi(APIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "Feeds",
                {"feeds": serializers.ListField(child=serializers.DictField(), help_text="one per account")},
            ),
            503: UNAVAILABLE,
        }
    )
    def get(self, request: Request) -> Response:
        client = redis_client()
        try:
            statuses = feed_status_list(client=client, now=time.time())
        finally:
            client.close()
        return Response({"feeds": [asdict(status) for status in statuses]})


class FeedPlanSerializer(serializers.ModelSerializer):
    errors = serializers.ListField(child=serializers.CharField(), help_text="what the plan could not place")

    class Meta:
        model = FeedPlan
        fields = [
            "version",
            "created_at",
            "reason",
            "errors",
            "desired_tokens",
            "added_tokens",
            "removed_tokens",
            "moved_tokens",
        ]


class TokenDiffSerializer(serializers.Serializer):
    planned = serializers.IntegerField()
    subscribed = serializers.IntegerField()
    missing_count = serializers.IntegerField(help_text="planned here, not subscribed")
    missing = serializers.ListField(child=serializers.IntegerField(), help_text="the lowest tokens of those")
    unplanned_count = serializers.IntegerField(help_text="subscribed here, not planned")
    unplanned = serializers.ListField(
        child=serializers.IntegerField(), help_text="the lowest tokens of those"
    )


class ConnectionCoverageSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    account = serializers.CharField()
    connection = serializers.IntegerField()
    reported_plan_version = serializers.IntegerField(
        allow_null=True, help_text="the plan version the account's feed applied; null: no live report"
    )
    tokens = TokenDiffSerializer()


class AccountDriftSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    planned = serializers.IntegerField()
    reported = serializers.IntegerField()
    stale_version = serializers.BooleanField()


class DriftFixSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    plan_version = serializers.IntegerField()
    drifts = AccountDriftSerializer(many=True)


class FeedAssignmentSerializer(serializers.ModelSerializer):
    """Why a token sits on a connection."""

    account = serializers.CharField(source="account.name")
    tradingsymbol = serializers.CharField(allow_null=True, help_text="null when the instrument is unknown")

    class Meta:
        model = FeedAssignment
        fields = [
            "instrument_token",
            "tradingsymbol",
            "group",
            "underlying",
            "expiry",
            "strike",
            "strike_offset",
            "role",
            "primary",
            "account",
            "connection",
            "mode",
        ]


class FeedAssignmentPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = FeedAssignmentSerializer(many=True)


class FeedPlanApi(APIView):
    """The plan in force: why it was made, subscribed against planned per connection, the drift the
    reconciler last fixed, and one page of its tokens with why each sits where it does."""

    class FilterSerializer(serializers.Serializer):
        account = serializers.CharField(
            required=False, max_length=64, help_text="only this broker account's tokens (its name)"
        )
        underlying = serializers.CharField(required=False, max_length=64, help_text="e.g. NIFTY")
        token = serializers.IntegerField(
            required=False, min_value=1, max_value=INSTRUMENT_TOKEN_MAX, help_text="one instrument token"
        )

        def validate_account(self, name: str) -> BrokerAccount:
            # Looked up only after CharField's checks: a SlugRelatedField sent a NUL to PostgreSQL (500).
            account = broker_account_get(name=name)
            if account is None:
                raise serializers.ValidationError(f"No broker account named {name!r}.")
            return account

    class OutputSerializer(serializers.Serializer):
        plan = FeedPlanSerializer(allow_null=True, help_text="null before the first plan")
        connections = ConnectionCoverageSerializer(many=True, help_text="every account, unfiltered")
        last_drift = DriftFixSerializer(allow_null=True, help_text="null before the reconciler's first pass")
        tokens = FeedAssignmentPageSerializer(help_text="filtered by account, underlying, token; paged")

        class Meta:
            ref_name = "FeedPlanReport"

    @extend_schema(
        parameters=[FilterSerializer, *page_parameters("(of `tokens`)")],
        responses={200: OutputSerializer, 503: UNAVAILABLE},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        client = redis_client()
        try:
            overview = feed_plan_overview(client=client)
        finally:
            client.close()
        if overview.plan is None:
            tokens = FeedAssignment.objects.none()
        else:
            tokens = feed_assignment_list(plan=overview.plan, **filters.validated_data)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(tokens, request, view=self)
        page_body = {
            "count": paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": page,
        }
        body = {
            "plan": overview.plan,
            "connections": overview.connections,
            "last_drift": overview.last_drift,
            "tokens": page_body,
        }
        return Response(self.OutputSerializer(body).data)
