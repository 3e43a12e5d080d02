"""django-prometheus's middlewares: every request's latency and response, per route, on /metrics."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.test import Client
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.database import database_url

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.django_db

LATENCY = "django_http_requests_latency_seconds_by_view_method"
RESPONSES = "django_http_responses_total_by_status_view_method"  # exposed with a _total suffix


def _get(family: str, suffix: str, **labels: str) -> float:
    body = Client().get("/metrics").content.decode()
    for found in text_string_to_metric_families(body):
        for sample in found.samples:
            if sample.name == family + suffix and labels.items() <= sample.labels.items():
                return sample.value
    return 0.0


def test_a_request_is_timed_under_its_route_name(redis_client: object) -> None:
    before = _get(LATENCY, "_count", view="healthz", method="GET")

    assert Client().get("/healthz").status_code == 200

    assert _get(LATENCY, "_count", view="healthz", method="GET") == before + 1


def test_responses_are_counted_by_status_and_route(redis_client: object) -> None:
    labels = {"view": "readyz", "method": "GET", "status": "503"}  # nothing beats in a test: not ready
    before = _get(RESPONSES, "_total", **labels)

    assert Client().get("/readyz").status_code == 503

    assert _get(RESPONSES, "_total", **labels) == before + 1


def test_the_families_are_exposed_with_the_contract_names_and_types() -> None:
    body = Client().get("/metrics").content.decode()

    assert f"# TYPE {LATENCY} histogram" in body
    assert f"# TYPE {RESPONSES}_total counter" in body


# --- two uvicorn workers sharing PROMETHEUS_MULTIPROC_DIR, as `make run` serves the web ---------------

PORTS = range(18200, 18300)  # this suite's block for servers it starts
REQUESTS = 20


def _port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise AssertionError(f"no free port in {PORTS}")


def _scrape(port: int) -> list[Metric]:
    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return list(text_string_to_metric_families(body))


def _healthz_count(families: list[Metric]) -> float:
    return sum(
        s.value
        for f in families
        for s in f.samples
        if s.name == f"{LATENCY}_count" and s.labels["view"] == "healthz"
    )


def _web_pids(families: list[Metric]) -> set[str]:
    return {
        s.labels["pid"]
        for f in families
        for s in f.samples
        if s.name == "ticker_process_rss_bytes" and s.labels["process_type"] == "web"
    }


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_uvicorn_workers_are_counted_together(tmp_path: Path, redis_client: object) -> None:
    port = _port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DATABASE_URL": database_url()}
    command = [sys.executable, "-m", "uvicorn", "tickerproject.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--log-level", "warning"]
    log = tmp_path / "web.log"
    web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        families = _until_both_workers_report(web, port, log)
        before = _healthz_count(families)
        for _ in range(REQUESTS):
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        after = _healthz_count(_scrape(port))
    finally:
        web.terminate()
        web.wait(30)

    assert after == before + REQUESTS  # whichever worker served each request and each scrape


def _until_both_workers_report(web: subprocess.Popen[bytes], port: int, log: Path) -> list[Metric]:
    deadline = time.monotonic() + 60
    while True:
        assert web.poll() is None, log.read_text()
        with contextlib.suppress(requests.ConnectionError):
            families = _scrape(port)
            if len(_web_pids(families)) == 2:
                return families
        assert time.monotonic() < deadline, f"two web workers did not report:\n{log.read_text()}"
        time.sleep(0.2)
