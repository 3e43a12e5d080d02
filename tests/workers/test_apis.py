import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_redis(redis_client) -> None:
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": True, "redis": True}


def test_healthz_is_503_when_redis_is_unreachable(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json()["redis"] is False


def test_metrics_are_exposed_for_prometheus() -> None:
    response = Client().get("/metrics")

    assert response.status_code == 200
    assert "feed_frames_total" in response.content.decode()
