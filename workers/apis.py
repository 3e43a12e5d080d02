"""Operational endpoints: liveness and the state of every feed."""

import os
import time
from dataclasses import asdict
from pathlib import Path

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workers.selectors import feed_status_list
from workers.services import redis_client


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def _redis_ok() -> bool:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "redis": _redis_ok()}
    return JsonResponse({"ok": all(checks.values()), **checks}, status=200 if all(checks.values()) else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; with PROMETHEUS_MULTIPROC_DIR set, every process's metrics."""
    registry = REGISTRY
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _forget_dead_processes(Path(directory))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


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
    @extend_schema(responses=inline_serializer("Feeds", {"feeds": serializers.ListField()}))
    def get(self, request: Request) -> Response:
        client = redis_client()
        try:
            statuses = feed_status_list(client=client, now=time.time())
        finally:
            client.close()
        return Response({"feeds": [asdict(status) for status in statuses]})
